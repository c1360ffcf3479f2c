#!/usr/bin/env bash
# Distributed training (torchrun; nccl on CUDA, gloo on CPU, chosen automatically).
#   bash tools/dist_train.sh CONFIG NPROC_PER_NODE [tools/train.py args...]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 PORT=29500 on each node.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: bash tools/dist_train.sh CONFIG NPROC_PER_NODE [tools/train.py args...]" >&2
  exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/torchrun.sh" "$NPROC" "$TOOLS/train.py" "$CONFIG" --launcher pytorch "$@"
