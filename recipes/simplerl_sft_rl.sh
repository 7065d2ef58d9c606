#!/usr/bin/env bash
# SimpleRL (SFT-then-RL): long-CoT SFT of Qwen2.5-Math-7B (simplerl_sft.yaml, torchrun + DeepSpeed ZeRO-3), then
# the SimpleRL-Zero PPO recipe started from the SFT model (simplerl_sft_rl.yaml, Ray). Sources: the YAML files.
#
#   SFT_DATA=/data/long_cot.jsonl bash recipes/simplerl_sft_rl.sh dry-run     # both plans
#   SFT_DATA=/data/long_cot.jsonl bash recipes/simplerl_sft_rl.sh [all]       # stage 1, then stage 2 (one node)
#   SFT_DATA=... bash recipes/simplerl_sft_rl.sh sft [key=value ...]          # stage 1 only (rl-sft overrides)
#   bash recipes/simplerl_sft_rl.sh rl|submit|resume [key=value ...]          # stage 2 only (rl-train overrides)
# Stage 2 on 4 nodes: `head` / `worker <ip>` as in simplerl_zero_ppo.sh, then `submit` on node 0.
#
# SFT_DATA   JSONL of {"question": ..., "response": <long solution ending in \boxed{...}>} (see simplerl_sft.yaml);
#            default $MATHRL_DATA_DIR/simplerl_long_cot_sft.jsonl (MATHRL_DATA_DIR defaults to <repo>/../shared/data)
# NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT   multi-node SFT (torchrun; default: this node only)
# Other environment (OUTPUT_ROOT, GPUS_PER_NODE, REWARD_URL, PRINT_ONLY, ...): lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SFT_DATA=${SFT_DATA:-${MATHRL_DATA_DIR:-$ROOT/../shared/data}/simplerl_long_cot_sft.jsonl}
SFT_OUT=$OUTPUT_ROOT/simplerl_sft
RL_CONFIG=recipes/simplerl_sft_rl.yaml

sft_args() { echo "data.train=$SFT_DATA"; echo "logging.output_dir=$SFT_OUT"; }

stage_sft() {
  local -a args
  mapfile -t args < <(sft_args)
  cd "$ROOT"
  run_cmd "$PYTHON" -m torch.distributed.run --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" --nproc_per_node "$GPUS_PER_NODE" \
    --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
    -m trainer.sft_cli --config recipes/simplerl_sft.yaml "${args[@]}" "$@"
}

stage_rl() {  # MODE [overrides...]
  local mode=$1; shift
  recipe_main "$RL_CONFIG" "$mode" "model.pretrain=$SFT_OUT/model" "$@"
}

mode=${1:-all}
case "$mode" in
  dry-run)
    shift
    mapfile -t args < <(sft_args)
    (cd "$ROOT" && "$PYTHON" -m trainer.sft_cli --config recipes/simplerl_sft.yaml --dry-run "${args[@]}")
    stage_rl dry-run "$@" ;;
  all) shift || true; stage_sft; stage_rl run "$@" ;;
  sft) shift; stage_sft "$@" ;;
  rl) shift; stage_rl run "$@" ;;
  submit|resume|head|worker) shift; stage_rl "$mode" "$@" ;;
  *) die "unknown mode '$mode' (dry-run, all, sft, rl, submit, resume, head, worker)" ;;
esac
