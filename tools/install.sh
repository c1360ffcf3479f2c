#!/usr/bin/env bash
# One-command, idempotent install of the FULLER-3D stack into ./.venv.
#
#   bash tools/install.sh          (what `make install` runs)
#
# Environment knobs:
#   FULLER_VENV        venv path (default: <repo>/.venv)
#   FULLER_PYTHON      interpreter that creates the venv (default: python3)
#   FULLER_WHEEL_CACHE where the built mmcv wheel is kept (default: ~/.cache/fuller-3d/wheels)
#   FULLER_FORCE=1     reinstall everything even if the stamp says it is done
#   MAX_JOBS           parallel compile jobs for the mmcv build (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FULLER_VENV:-$ROOT/.venv}"
PY_BASE="${FULLER_PYTHON:-python3}"
WHEEL_CACHE="${FULLER_WHEEL_CACHE:-$HOME/.cache/fuller-3d/wheels}"
STAMP="$VENV/.fuller-install-stamp"

TORCH_PIN="torch==2.13.0"
MMCV_VERSION="2.1.0"
# Everything but torch and mmcv; mmdet3d itself goes in with --no-deps (its full
# requirement list drags in open3d and other viewers the plugin never imports).
STACK=(
  "numpy<2"
  "mmengine==0.10.7"
  "mmdet==3.3.0"
  "nuscenes-devkit==1.2.0"
  "opencv-python-headless<4.12"
  "setuptools<82" wheel ninja packaging
  numba "networkx" plyfile "scikit-image" "tensorboard" trimesh "shapely" "lyft-dataset-sdk"
  "pytest" "matplotlib"
)

step=""
log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
fail() {
  printf '\033[31m[install] FAILED at step: %s\033[0m\n' "$step" >&2
  printf '[install] %s\n' "$1" >&2
  exit 1
}
trap 'fail "see the messages above; fix the cause and re-run \`make install\` (it resumes where it stopped). FULLER_FORCE=1 rebuilds from scratch."' ERR

# The stamp is a hash of this script and setup.py: editing either re-runs the install.
want_stamp="$(cat "$0" "$ROOT/setup.py" 2>/dev/null | sha256sum | cut -d' ' -f1)"
if [[ "${FULLER_FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] \
   && "$VENV/bin/python" -c "import fuller, mmcv.ops, mmdet3d, nuscenes" 2>/dev/null; then
  log "already installed in $VENV (delete $STAMP or set FULLER_FORCE=1 to redo)"
  exit 0
fi

step="create the virtual environment"
if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PY_BASE" >/dev/null || fail "no '$PY_BASE' on PATH; install Python 3.8-3.11 or set FULLER_PYTHON"
  if "$PY_BASE" -c "import torch" 2>/dev/null; then
    # Keep the user's torch (e.g. a CUDA build) visible inside the venv.
    log "creating $VENV (with system site-packages: the base interpreter already has torch)"
    "$PY_BASE" -m venv --system-site-packages "$VENV"
  else
    log "creating $VENV"
    "$PY_BASE" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

step="install torch"
if "$PY" -c "import torch" 2>/dev/null; then
  log "torch $("$PY" -c 'import torch; print(torch.__version__)') already importable: keeping it"
else
  log "installing $TORCH_PIN"
  "${PIP[@]}" install -q "$TORCH_PIN"
fi

step="install the OpenMMLab / nuScenes stack"
log "installing mmengine, mmdet, nuscenes-devkit and helpers (numpy<2)"
"${PIP[@]}" install -q "${STACK[@]}"

step="build or reuse the mmcv $MMCV_VERSION wheel (with ops)"
read -r TORCH_TAG CUDA_OK < <("$PY" -c "import torch;print(torch.__version__.replace('+','_'), int(torch.cuda.is_available() or bool(torch.version.cuda)))")
WDIR="$WHEEL_CACHE/torch-$TORCH_TAG-py$("$PY" -c 'import sys;print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  mkdir -p "$WDIR"
  whl="$(ls "$WDIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$whl" ]]; then
    export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
    [[ "$CUDA_OK" == 1 ]] && export FORCE_CUDA=1
    log "building mmcv $MMCV_VERSION from source with ops (cuda=$CUDA_OK, $MAX_JOBS jobs); takes ~9 min on 2 cores, once per machine"
    t0=$(date +%s)
    "${PIP[@]}" wheel --no-deps --no-build-isolation -w "$WDIR" "mmcv==$MMCV_VERSION"
    log "mmcv built in $(( $(date +%s) - t0 )) s; cached in $WDIR"
    whl="$(ls "$WDIR"/mmcv-"$MMCV_VERSION"-*.whl | head -n1)"
  else
    log "reusing cached wheel $whl"
  fi
  "${PIP[@]}" install -q --no-deps "$whl"
  "${PIP[@]}" install -q addict yapf pillow pyyaml
fi

step="install mmdet3d 1.4.0 (no extra viewers)"
"${PIP[@]}" install -q --no-deps "mmdet3d==1.4.0"

step="install the fuller plugin (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

step="check the imports"
"$PY" - <<'PY'
import torch, mmengine, mmcv, mmcv.ops, mmdet, mmdet3d, nuscenes, numpy, fuller
print(f"[install] ok: torch {torch.__version__} (cuda {torch.cuda.is_available()}), mmengine {mmengine.__version__}, "
      f"mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmdet3d {mmdet3d.__version__}, numpy {numpy.__version__}")
PY
echo "$want_stamp" > "$STAMP"
log "done"
