#!/usr/bin/env bash
# SimpleRL-Zero (PPO, Qwen2.5-Math-7B, 32 GPUs = 4 nodes x 8). Hyper-parameters and sources: simplerl_zero_ppo.yaml
#   bash recipes/simplerl_zero_ppo.sh dry-run                 # the plan, anywhere
#   bash recipes/simplerl_zero_ppo.sh head                    # node 0
#   bash recipes/simplerl_zero_ppo.sh worker <node-0 ip>      # nodes 1, 2, 3
#   OUTPUT_ROOT=/shared/runs bash recipes/simplerl_zero_ppo.sh submit [key=value ...]   # on node 0
# (or, on node 0 of a running cluster: RAY_ADDRESS=auto bash recipes/simplerl_zero_ppo.sh run). Modes: lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
recipe_main recipes/simplerl_zero_ppo.yaml "$@"
