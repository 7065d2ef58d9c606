#!/usr/bin/env bash
# The CPU quickstart: tiny model built locally -> SFT -> GRPO through the reward service -> held-out eval,
# with the same-time SFT control. ~8-9 minutes on 2 CPU cores; no hub, no GPU.
#   recipes/quickstart.sh [--output-dir runs/quickstart] [--seed 0]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$PYTHON" -m trainer.quickstart "$@"
