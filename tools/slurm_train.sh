#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU, mmengine reads the SLURM_* env.
#   [GPUS=16 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#     bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args...]
#
# Preemption and time limits. On SIGTERM every task finishes the current
# iteration, rank 0 saves WORK_DIR/iter_<N>.pth and points last_checkpoint at
# it, and the tasks exit 143 (tools/train.py, GracefulStopHook). Slurm sends
# SIGTERM on preemption and at the time limit, then SIGKILL after KillWait
# (often 30 s): ask for an earlier warning, and for requeueing, in the batch
# script that calls this one:
#   #SBATCH --signal=TERM@120   # SIGTERM to all tasks 120 s before the limit
#   #SBATCH --requeue           # preempted / failed-node jobs are queued again
#   W=work_dirs/x
#   bash tools/slurm_train.sh PARTITION JOB CONFIG $W \
#     $([ -f $W/last_checkpoint ] && echo --resume)
# Not --signal=B:TERM@120: "B:" signals only the batch shell, not the tasks.
# --resume continues WORK_DIR/last_checkpoint and refuses a work dir with
# nothing to resume, hence the test: the first start and every requeue run
# the same line. A job stopped at its time limit is not requeued by Slurm:
# submit it again (or `scontrol requeue <jobid>`) and it continues.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py args...]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
WORK_ARGS=()
if [[ $# -gt 0 && "$1" != -* ]]; then
  WORK_ARGS=(--work-dir "$1")
  shift
fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$( [[ -x "$ROOT/.venv/bin/python" ]] && echo "$ROOT/.venv/bin/python" || echo python )}"
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres="gpu:$GPUS_PER_NODE" \
  --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 ${SRUN_ARGS:-} \
  "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" "${WORK_ARGS[@]}" --launcher slurm "$@"
