#!/usr/bin/env bash
# Shared launcher of dist_train.sh / dist_test.sh:
#   bash tools/torchrun.sh NPROC_PER_NODE SCRIPT [args...]
# Multi-node through NNODES, NODE_RANK, MASTER_ADDR, PORT (same on every node
# but NODE_RANK). Uses the checkout's .venv when there is one (or $PYTHON).
set -euo pipefail
NPROC=$1
shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
# Keep each process to its share of the cores (torch otherwise oversubscribes).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / NPROC > 0 ? $(nproc) / NPROC : 1 ))}"
# Check config, checkpoint, data and work dir once before torchrun starts the
# ranks: a bad input ends here, its one-line message last, instead of once per
# rank under torchrun's failure report (FULLER_NO_PREFLIGHT=1 skips it).
if [[ -z "${FULLER_NO_PREFLIGHT:-}" ]]; then
  "$PYTHON" "$@" --validate-only
fi
exec "$PYTHON" -m torch.distributed.run \
  --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
  --nproc_per_node="$NPROC" "$@"
