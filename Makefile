# FULLER-3D: one-command install, tests and demo.
#   make demo   the FULLER experiment end to end on CPU (installs if needed)
#   make test   installs if needed, then runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
SEEDS ?= 1

.PHONY: install test demo demo-quick data clean
SYNTH ?= data/nuscenes-synth

install:
	@bash tools/install.sh

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(PY) tools/run_demo.py --seeds $(SEEDS)

demo-quick: install
	$(PY) tools/run_demo.py --quick

# The default synthetic nuScenes set and its info files (skipped when present).
data: install
	@test -f $(SYNTH)/v1.0-mini/scene.json || $(PY) tools/make_synthetic_nuscenes.py --out $(SYNTH)
	@ls $(SYNTH)/*infos_train*.pkl >/dev/null 2>&1 || $(PY) tools/create_data.py nuscenes --root-path $(SYNTH) --version v1.0-mini

clean:
	rm -rf $(VENV) build projects/*.egg-info
