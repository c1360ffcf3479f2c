# FULLER-3D: one-command install, tests and demo.
#   make demo       the FULLER experiment end to end (GPU if CUDA is present)
#   make ablation   every variant incl. the other inter calibrators, 3 seeds,
#                   the learning schedule (resumable; tools/run_demo.py)
#   make test       installs if needed, then runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
SEEDS ?= 1
# short (12 epochs, 960 iterations at batch 1) | learn (25 epochs, 1,000) | quick (smoke run)
SCHEDULE ?= short

.PHONY: install test demo demo-quick ablation data clean
SYNTH ?= data/nuscenes-synth

install:
	@bash tools/install.sh

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(PY) tools/run_demo.py --seeds $(SEEDS) --schedule $(SCHEDULE)

ablation: install
	$(PY) tools/run_demo.py --ablation

demo-quick: install
	$(PY) tools/run_demo.py --quick

# The default synthetic nuScenes set and its info files (skipped when present).
data: install
	$(PY) tools/run_demo.py --data-only --data-root $(SYNTH)

clean:
	rm -rf $(VENV) build projects/*.egg-info
