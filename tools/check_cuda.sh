#!/usr/bin/env bash
# Does the paper setting run on this machine's GPUs? Trains it a few
# iterations naive and FULLER, in fp32 and with --amp (tools/train.py),
# evaluates the FULLER checkpoint (tools/test.py) and trains FULLER on every
# visible GPU (tools/dist_train.sh). One PASS/FAIL line per item, with the
# median step time and the peak GPU memory; exit status 1 if any item failed.
#
#   bash tools/check_cuda.sh --data-root DIR [options]
#
#   --data-root DIR   a nuScenes-format set with its info files (a small one:
#                     the evaluation runs over its whole val split), e.g. a
#                     synthetic set from tools/make_synthetic_nuscenes.py
#   --iters N         training iterations of each run (default 10)
#   --work-dir DIR    where the runs and their logs go; must not hold files
#                     yet (default work_dirs/check_cuda)
#   --gpus N          ranks of the distributed item (default: every visible
#                     GPU; 2 with --device cpu)
#   --setting S       configs/fuller/fuller_S_{naive,fuller}.py (default nus)
#   --items LIST      comma list of items to run (default all):
#                     naive-fp32,fuller-fp32,naive-amp,fuller-amp,test,dist
#   --pretrained      load the ImageNet Swin-T weights (needs network access;
#                     default: random init, enough for a run check)
#   --device cpu      the same items on CPU with the GPUs hidden (gloo ranks,
#                     bfloat16 autocast), for a machine without a GPU; use
#                     with --setting cpu
#   --dry-run         print the commands, run and write nothing
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL_ITEMS="naive-fp32,fuller-fp32,naive-amp,fuller-amp,test,dist"

die() {
  echo "tools/check_cuda.sh: error: $*" >&2
  exit 2
}

DATA_ROOT="" ITERS=10 WORK="work_dirs/check_cuda" GPUS="" SETTING=nus
ITEMS=$ALL_ITEMS PRETRAINED=0 DEVICE=cuda DRY=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --data-root | --iters | --work-dir | --gpus | --setting | --items | --device)
      [[ $# -ge 2 && $2 != --* ]] || die "$1 needs a value"
      case $1 in
        --data-root) DATA_ROOT=$2 ;;
        --iters) ITERS=$2 ;;
        --work-dir) WORK=$2 ;;
        --gpus) GPUS=$2 ;;
        --setting) SETTING=$2 ;;
        --items) ITEMS=$2 ;;
        --device) DEVICE=$2 ;;
      esac
      shift 2 ;;
    --pretrained) PRETRAINED=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h | --help) sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[[ -n $DATA_ROOT ]] || die "--data-root DIR is required (a nuScenes-format set with info files)"
[[ -d $DATA_ROOT ]] || die "--data-root: no such directory: $DATA_ROOT"
[[ $ITERS =~ ^[1-9][0-9]*$ ]] || die "--iters must be a positive integer, got '$ITERS'"
[[ -z $GPUS || $GPUS =~ ^[1-9][0-9]*$ ]] || die "--gpus must be a positive integer, got '$GPUS'"
[[ $DEVICE == cuda || $DEVICE == cpu ]] || die "--device must be cuda or cpu, got '$DEVICE'"
for cfg in naive fuller; do
  [[ -f $ROOT/configs/fuller/fuller_${SETTING}_$cfg.py ]] ||
    die "--setting $SETTING: configs/fuller/fuller_${SETTING}_$cfg.py not found (use nus or cpu)"
done
IFS=, read -r -a RUN_ITEMS <<< "$ITEMS"
for item in "${RUN_ITEMS[@]}"; do
  [[ ,$ALL_ITEMS, == *,$item,* ]] || die "--items: unknown item '$item' (choose from $ALL_ITEMS)"
done
if [[ -d $WORK && -n "$(ls -A "$WORK")" ]]; then
  die "--work-dir $WORK already holds files; give a new or empty directory"
fi

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHON
if [[ $DEVICE == cpu ]]; then
  export CUDA_VISIBLE_DEVICES=""  # gloo ranks and CPU autocast on any machine
  GPUS=${GPUS:-2}
elif [[ $DRY == 0 ]]; then
  NGPU=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null) ||
    die "cannot import torch with $PYTHON (set PYTHON=...)"
  [[ $NGPU -gt 0 ]] || die "no CUDA GPU visible to torch; on a CPU machine use --device cpu --setting cpu"
  GPUS=${GPUS:-$NGPU}
fi
GPUS=${GPUS:-1}

DATA_ROOT="$(cd "$DATA_ROOT" && pwd)"
WORK="$(realpath -m "$WORK")"
if [[ $DRY == 0 ]]; then
  mkdir -p "$WORK/configs" || die "cannot create --work-dir $WORK"
fi

# A short-run copy of a config: ITERS iterations, no validation, a log line
# (and step time / memory scalars) every iteration, one checkpoint at the end.
short_config() {
  local name=$1 out="$WORK/configs/$1_short.py" init=""
  [[ $PRETRAINED == 1 ]] || init="
model = dict(img_backbone=dict(init_cfg=None))"
  [[ $DRY == 1 ]] && { echo "$out"; return; }  # writes nothing
  cat > "$out" <<EOF
# Written by tools/check_cuda.sh: $name for $ITERS iterations.
_base_ = ['$ROOT/configs/fuller/fuller_${SETTING}_$name.py']
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=$ITERS,
                 val_interval=$((ITERS + 1)))
param_scheduler = None
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval=$ITERS, max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size=1)$init
EOF
  echo "$out"
}

FAILED=0
# run_item NAME SUMMARY_DIR COMMAND...: runs it, logs to WORK/NAME.log, prints
# PASS/FAIL with the run summary (step time, peak memory) of SUMMARY_DIR.
run_item() {
  local name=$1 summary_dir=$2
  shift 2
  if [[ $DRY == 1 ]]; then
    printf 'DRY   %-12s %s\n' "$name" "$*"
    return
  fi
  local log="$WORK/$name.log" info="" rc=0
  (cd "$ROOT" && "$@") > "$log" 2>&1 || rc=$?
  if [[ $rc == 0 ]]; then
    if [[ -n $summary_dir ]]; then
      info=$(cd "$ROOT" && "$PYTHON" tools/run_summary.py "$summary_dir" 2>&1) || {
        printf 'FAIL  %-12s ran, but %s\n' "$name" "$info"
        FAILED=1
        return
      }
    fi
    printf 'PASS  %-12s %s\n' "$name" "${info:-ok}"
  else
    printf 'FAIL  %-12s exit %s, last line: %s (log: %s)\n' "$name" "$rc" \
      "$(grep -v '^\s*$' "$log" | tail -n 1)" "$log"
    FAILED=1
  fi
}

echo "check_cuda: setting $SETTING, $ITERS iterations, device $DEVICE, $GPUS rank(s) for dist, runs in $WORK"
for item in "${RUN_ITEMS[@]}"; do
  case $item in
    naive-fp32 | fuller-fp32 | naive-amp | fuller-amp)
      name=${item%-*} amp=()
      [[ $item == *-amp ]] && amp=(--amp)
      cfg=$(short_config "$name")
      run_item "$item" "$WORK/$item" "$PYTHON" tools/train.py "$cfg" \
        --data-root "$DATA_ROOT" --work-dir "$WORK/$item" "${amp[@]}" ;;
    test)
      # evaluates the fuller-fp32 checkpoint (trained here if not asked for)
      ckpt="$WORK/fuller-fp32/iter_$ITERS.pth"
      if [[ ,$ITEMS, != *,fuller-fp32,* && $DRY == 0 ]]; then
        run_item fuller-fp32 "$WORK/fuller-fp32" "$PYTHON" tools/train.py \
          "$(short_config fuller)" --data-root "$DATA_ROOT" --work-dir "$WORK/fuller-fp32"
      fi
      run_item test "" "$PYTHON" tools/test.py "$(short_config fuller)" "$ckpt" \
        --data-root "$DATA_ROOT" --work-dir "$WORK/test" ;;
    dist)
      run_item dist "$WORK/dist" bash tools/dist_train.sh "$(short_config fuller)" \
        "$GPUS" --data-root "$DATA_ROOT" --work-dir "$WORK/dist" ;;
  esac
done
exit $FAILED
