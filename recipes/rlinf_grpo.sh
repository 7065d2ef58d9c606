#!/usr/bin/env bash
# RLinf-style GRPO on DeepSeek-R1-Distill-Qwen-1.5B, every role on every GPU of 8 nodes x 8.
# Hyper-parameters and sources: rlinf_grpo.yaml. Modes and environment: lib.sh.
#   bash recipes/rlinf_grpo.sh dry-run
#   bash recipes/rlinf_grpo.sh head ; bash recipes/rlinf_grpo.sh worker <head ip>   # on the other 7 nodes
#   OUTPUT_ROOT=/shared/runs bash recipes/rlinf_grpo.sh submit [key=value ...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
recipe_main recipes/rlinf_grpo.yaml "$@"
