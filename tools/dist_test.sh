#!/usr/bin/env bash
# Distributed evaluation (torchrun; nccl on CUDA, gloo on CPU).
#   bash tools/dist_test.sh CONFIG CKPT NPROC_PER_NODE [tools/test.py args...]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host0 PORT=29500 on each node.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: bash tools/dist_test.sh CONFIG CKPT NPROC_PER_NODE [tools/test.py args...]" >&2
  exit 2
fi
CONFIG=$1
CKPT=$2
NPROC=$3
shift 3
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$TOOLS/torchrun.sh" "$NPROC" "$TOOLS/test.py" "$CONFIG" "$CKPT" --launcher pytorch "$@"
