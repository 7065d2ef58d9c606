#!/usr/bin/env bash
# GRPO on LIMO with Qwen2.5-Math-1.5B (one node, 8 GPUs: 7 training ranks + 1 vLLM engine).
# Hyper-parameters and sources: limo_grpo.yaml. Modes and environment: lib.sh.
#   bash recipes/limo_grpo.sh dry-run
#   bash recipes/limo_grpo.sh run [key=value ...]        # starts a single-node Ray here
set -euo pipefail
source "$(dirname "$0")/lib.sh"
recipe_main recipes/limo_grpo.yaml "$@"
