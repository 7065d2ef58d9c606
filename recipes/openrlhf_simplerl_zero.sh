#!/usr/bin/env bash
# SimpleRL-Zero on stock OpenRLHF (`python -m openrlhf.cli.train_ppo_ray`), with this project's reward service as
# OpenRLHF's remote reward model (--remote_rm_url http://HOST:PORT/get_reward). The same run as
# recipes/simplerl_zero_ppo.yaml (see it for where each number comes from), on 32 GPUs: actor 8 + reference 8
# (colocated with the actor), critic 8, 16 vLLM engines.
#
#   bash recipes/openrlhf_simplerl_zero.sh print            # the reward-service and OpenRLHF commands
#   bash recipes/openrlhf_simplerl_zero.sh serve            # only start the reward service here (foreground)
#   bash recipes/openrlhf_simplerl_zero.sh run  [--flag value ...]     # on the Ray head: service + OpenRLHF
#   bash recipes/openrlhf_simplerl_zero.sh submit [--flag value ...]   # on the Ray head: service + ray job submit
# Start the Ray cluster first (`ray start --head --num-gpus 8` on node 0, `ray start --address <node0>:6379
# --num-gpus 8` on nodes 1-3; or `bash recipes/simplerl_zero_ppo.sh head|worker`). Extra arguments are appended
# to OpenRLHF's command line (argparse: a flag given twice takes the last value).
#
# Environment:
#   OPENRLHF_PYTHON  interpreter with openrlhf installed (default python3); the reward service uses PYTHON (lib.sh)
#   REWARD_URL       a reward service that is already running (http://host:port): nothing is started
#   REWARD_HOST      the address of this node that every node reaches (default: first of `hostname -I`)
#   REWARD_PORT      (default 5000)   REWARD_WORKERS  grading processes (default 16)
#   PROMPT_DATA      prompts JSONL with `problem` and `answer` (default $MATHRL_DATA_DIR/math_l3to5_simplerl_approx.jsonl)
#   MODEL            (default Qwen/Qwen2.5-Math-7B)   OUTPUT_ROOT   shared directory for checkpoints (lib.sh)
#
# OpenRLHF flags were checked against openrlhf/cli/train_ppo_ray.py at OpenRLHF commit 021d1b09 (a recent one:
# it has --attn_implementation, --kl_estimator, --vllm_enable_sleep). Its defaults differ from the OpenRLHF that
# SimpleRL used, so every number is given here: e.g. --value_clip (now 0.5 by default), --lambd (now 1.0).
# Older releases spell --attn_implementation flash_attention_2 as --flash_attn and have no --kl_estimator
# (k1 was the only choice there); drop those two flags for them.
# The prompt is the tokenizer's chat template on the bare problem (--apply_chat_template): Qwen2.5-Math's template
# adds its boxed system prompt itself, which is this project's `qwen_boxed`. The service grades `query` minus the
# prompt against `labels` (--label_key answer) with the `simplerl` scheme (+1 / -0.5 / -1). OpenRLHF sends no
# token: run the service without one, reachable only from the cluster's network.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OPENRLHF_PYTHON=${OPENRLHF_PYTHON:-python3}
REWARD_PORT=${REWARD_PORT:-5000}
REWARD_HOST=${REWARD_HOST:-$(hostname -I 2>/dev/null | awk '{print $1}')}
REWARD_HOST=${REWARD_HOST:-127.0.0.1}
REWARD_WORKERS=${REWARD_WORKERS:-16}
PROMPT_DATA=${PROMPT_DATA:-${MATHRL_DATA_DIR:-$ROOT/../shared/data}/math_l3to5_simplerl_approx.jsonl}
MODEL=${MODEL:-Qwen/Qwen2.5-Math-7B}
SAVE=$OUTPUT_ROOT/openrlhf_simplerl_zero
RM_URL=${REWARD_URL:-http://$REWARD_HOST:$REWARD_PORT}/get_reward

RS_CMD=("$PYTHON" -m reward_service.cli --host 0.0.0.0 --port "$REWARD_PORT" --workers "$REWARD_WORKERS"
        --timeout 2.0 --default-scheme simplerl)

openrlhf_args() {
  local -a a=(
    --actor_num_nodes 1 --actor_num_gpus_per_node 8
    --ref_num_nodes 1 --ref_num_gpus_per_node 8 --colocate_actor_ref
    --critic_num_nodes 1 --critic_num_gpus_per_node 8
    --vllm_num_engines 16 --vllm_tensor_parallel_size 1 --vllm_sync_backend nccl
    --pretrain "$MODEL"
    --remote_rm_url "$RM_URL"
    --prompt_data "$PROMPT_DATA" --input_key problem --label_key answer --apply_chat_template
    --rollout_batch_size 1024 --n_samples_per_prompt 8 --micro_rollout_batch_size 2
    --train_batch_size 128 --micro_train_batch_size 2 --max_epochs 1 --num_episodes 20 --max_samples 100000
    --prompt_max_len 1024 --generate_max_len 3000 --temperature 0.6 --top_p 1.0
    --advantage_estimator gae --gamma 1.0 --lambd 0.95 --eps_clip 0.2 --value_clip 0.2
    --init_kl_coef 0.01 --kl_estimator k1
    --actor_learning_rate 5e-7 --critic_learning_rate 9e-6
    --lr_scheduler cosine_with_min_lr --lr_warmup_ratio 0.03 --max_norm 1.0 --l2 0.0 --adam_betas 0.9 0.95
    --zero_stage 3 --bf16 --gradient_checkpointing --attn_implementation flash_attention_2
    --save_path "$SAVE/model" --ckpt_path "$SAVE/ckpt" --save_steps 4 --max_ckpt_num 3 --load_checkpoint
    --save_hf_ckpt --use_tensorboard "$SAVE/tensorboard"
  )
  printf '%s\n' "${a[@]}"
}

start_reward_service() {
  if [[ -n "${REWARD_URL:-}" ]]; then
    echo "using the reward service at $REWARD_URL" >&2; return
  fi
  mkdir -p "$SAVE"
  "${RS_CMD[@]}" > "$SAVE/reward_service.log" 2>&1 &
  REWARD_PID=$!
  trap 'kill "$REWARD_PID" 2>/dev/null || true' EXIT
  local i
  for i in $(seq 1 120); do  # the grading workers take a few seconds to start
    if "$PYTHON" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$REWARD_PORT/health', timeout=2).status != 200)" 2>/dev/null; then
      echo "reward service up at http://$REWARD_HOST:$REWARD_PORT (log: $SAVE/reward_service.log)" >&2; return
    fi
    kill -0 "$REWARD_PID" 2>/dev/null || die "the reward service exited; see $SAVE/reward_service.log"
    sleep 1
  done
  die "the reward service did not become healthy in 120 s; see $SAVE/reward_service.log"
}

mode=${1:-print}
shift || true
mapfile -t ARGS < <(openrlhf_args)
cd "$ROOT"
case "$mode" in
  print)
    if [[ -z "${REWARD_URL:-}" ]]; then printf '%q ' "${RS_CMD[@]}"; echo '&'; fi
    printf '%q ' "$OPENRLHF_PYTHON" -m openrlhf.cli.train_ppo_ray "${ARGS[@]}" "$@"; echo ;;
  serve)
    [[ -z "${REWARD_URL:-}" ]] || die "REWARD_URL is set: a service is already running"
    exec "${RS_CMD[@]}" ;;
  run)
    start_reward_service
    "$OPENRLHF_PYTHON" -m openrlhf.cli.train_ppo_ray "${ARGS[@]}" "$@" ;;
  submit)
    start_reward_service
    ray job submit --address "$RAY_DASHBOARD" -- "$OPENRLHF_PYTHON" -m openrlhf.cli.train_ppo_ray "${ARGS[@]}" "$@" ;;
  *) die "unknown mode '$mode' (print, serve, run, submit)" ;;
esac
