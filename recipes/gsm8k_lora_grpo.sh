#!/usr/bin/env bash
# LoRA GRPO on GSM8K with a 4-bit Qwen2.5-3B-Instruct base on one GPU, in one process (no Ray).
# Hyper-parameters and sources: gsm8k_lora_grpo.yaml. Needs CUDA and bitsandbytes (pip install 'mathrl[gpu]').
#   bash recipes/gsm8k_lora_grpo.sh dry-run
#   CUDA_VISIBLE_DEVICES=0 bash recipes/gsm8k_lora_grpo.sh run [train.total_steps=250 ...]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
recipe_main recipes/gsm8k_lora_grpo.yaml "$@"
