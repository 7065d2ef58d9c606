#!/usr/bin/env bash
# ToRL-style GRPO with the Python tool from Qwen2.5-Math-1.5B (one node, 8 GPUs, training and vLLM colocated).
# Hyper-parameters and sources: torl_qwen2.5_math_1.5b.yaml. Modes and environment: lib.sh.
#   bash recipes/torl_qwen2.5_math_1.5b.sh dry-run
#   bash recipes/torl_qwen2.5_math_1.5b.sh run [key=value ...]        # starts a single-node Ray here
set -euo pipefail
source "$(dirname "$0")/lib.sh"
recipe_main recipes/torl_qwen2.5_math_1.5b.yaml "$@"
