#!/usr/bin/env bash
# SimpleRL-Zero on stock OpenRLHF (`python -m openrlhf.cli.train_ppo_ray`), with this project's reward service as
# OpenRLHF's remote reward model (http://HOST:PORT/get_reward). The same run as recipes/simplerl_zero_ppo.yaml
# (see it for where each number comes from), on 32 GPUs: actor 8 + reference 8 (colocated with the actor),
# critic 8, 16 vLLM engines.
#
#   bash recipes/openrlhf_simplerl_zero.sh dry-run          # print the reward-service and OpenRLHF commands
#   bash recipes/openrlhf_simplerl_zero.sh serve            # only start the reward service here (foreground)
#   bash recipes/openrlhf_simplerl_zero.sh run  [--flag value ...]     # on the Ray head: service + OpenRLHF
#   bash recipes/openrlhf_simplerl_zero.sh submit [--flag value ...]   # on the Ray head: service + ray job submit
# (`print` is `dry-run`.) Start the Ray cluster first (`ray start --head --num-gpus 8` on node 0, `ray start
# --address <node0>:6379 --num-gpus 8` on nodes 1-3; or `bash recipes/simplerl_zero_ppo.sh head|worker`). Extra
# arguments are appended to OpenRLHF's command line, in the installed release's spelling (argparse: a flag given
# twice takes the last value).
#
# Environment:
#   OPENRLHF_PYTHON  interpreter with openrlhf installed (default python3); the reward service uses PYTHON (lib.sh)
#   OPENRLHF_VERSION the OpenRLHF release to write flags for (e.g. 0.9.5); default: the version installed for
#                    OPENRLHF_PYTHON. OPENRLHF_FLAGS=v0.9 or v0.11 is accepted too and means 0.9.0 or 0.11.0
#                    (0.9.x changed flags twice: give the exact release there)
#   REWARD_URL       a reward service that is already running (http://host:port): nothing is started
#   REWARD_HOST      the address of this node that every node reaches (default: first of `hostname -I`)
#   REWARD_PORT      (default 5000)   REWARD_WORKERS  grading processes (default 16)
#   PROMPT_DATA      prompts JSONL with `problem` and `answer` (default $MATHRL_DATA_DIR/math_l3to5_simplerl_approx.jsonl)
#   MODEL            (default Qwen/Qwen2.5-Math-7B)   OUTPUT_ROOT   shared directory for checkpoints (lib.sh)
#
# OpenRLHF's command line changed four times since 0.9.0; read from openrlhf/cli/train_ppo_ray.py at the release
# tags (the PyPI wheels carry the same file):
#   v0.9.0  (06ab51e) - v0.9.1        flat flags, --bf16, --prompt_max_len 1024 --generate_max_len 3000
#   v0.9.2  (7026caa) - v0.9.7        --bf16 became --param_dtype bf16
#   v0.9.8  (9c5d260) - v0.10.1       --prompt_max_len/--generate_max_len became --max_len (prompt + response)
#                                     and --max_new_tokens; the prompt keeps max_len - max_new_tokens = 1024 tokens
#   v0.10.2 (64c1cc4) - v0.11.1       every flag dotted by role: --actor.model_name_or_path, --reward.remote_url,
#                                     --data.prompt_dataset, --actor.adam.lr, --ckpt.output_dir, ... (a flat flag
#                                     is an error there); optimizer and scheduler flags are per role
#                                     (v0.11.0 is 3c3be62)
#   0.11.2 (PyPI, 2026-09-14)         adds --actor.loss_agg_mode: seq-mean-token-mean is SimpleRL's per-sequence
#                                     mean; earlier releases have only the token mean (no flag)
# tests/test_interop_openrlhf.py parses the printed command with the argparse definitions of the PyPI releases
# 0.9.0, 0.9.1, 0.9.2, 0.9.7, 0.9.8, 0.9.10, 0.10.1, 0.10.2, 0.11.0, 0.11.1 and 0.11.2 and checks every value.
# Releases before 0.9.0 are not supported. Defaults differ between releases and from the OpenRLHF that SimpleRL
# used, so every number is given: e.g. the value clip (0.5 by default now), lambda (1.0 by default now).
#
# The prompt is the tokenizer's chat template on the bare problem (apply_chat_template): Qwen2.5-Math's template
# adds its boxed system prompt itself, which is this project's `qwen_boxed`. The service grades `query` minus the
# prompt against `labels` (label key `answer`) with the `simplerl` scheme (+1 / -0.5 / -1). OpenRLHF 0.9.0 sends
# the whole rollout batch (1024 prompts x 8 samples) in one request; 0.9.1 and later one request per sample.
# OpenRLHF sends no token: run the service without one, reachable only from the cluster's network.
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
NEWEST_TESTED=0.11.2

RS_CMD=("$PYTHON" -m reward_service.cli --host 0.0.0.0 --port "$REWARD_PORT" --workers "$REWARD_WORKERS"
        --timeout 2.0 --default-scheme simplerl)

# version_ge A B: A >= B as release numbers (0.9.10 > 0.9.8; 0.10.1.post2 < 0.10.2)
version_ge() { [[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$2" ]]; }

# The OpenRLHF release to write flags for: OPENRLHF_VERSION, OPENRLHF_FLAGS, else the installed one; empty if none.
openrlhf_version() {
  local v=${OPENRLHF_VERSION:-${OPENRLHF_FLAGS:-}}
  if [[ -z "$v" ]]; then
    v=$("$OPENRLHF_PYTHON" -c 'import importlib.metadata as m; print(m.version("openrlhf"))' 2>/dev/null) || v=
  fi
  v=${v#v}
  case "$v" in 0.9) v=0.9.0 ;; 0.10) v=0.10.0 ;; 0.11) v=0.11.0 ;; esac
  if [[ -n "$v" ]]; then
    [[ "$v" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?([.+-]?[A-Za-z0-9.]*)?$ ]] || die "not an OpenRLHF release number: '$v'"
    version_ge "$v" 0.9.0 || die "OpenRLHF $v is older than 0.9.0, the oldest release this recipe writes flags for"
  fi
  echo "$v"
}

# The OpenRLHF arguments for release $1, one per line.
openrlhf_args() {
  local v=$1
  local -a a
  if version_ge "$v" 0.10.2; then
    a=(
      --actor.num_nodes 1 --actor.num_gpus_per_node 8
      --ref.num_nodes 1 --ref.num_gpus_per_node 8 --train.colocate_actor_ref
      --critic.num_nodes 1 --critic.num_gpus_per_node 8
      --vllm.num_engines 16 --vllm.tensor_parallel_size 1 --vllm.sync_backend nccl
      --actor.model_name_or_path "$MODEL"
      --reward.remote_url "$RM_URL"
      --data.prompt_dataset "$PROMPT_DATA" --data.input_key problem --data.label_key answer --data.apply_chat_template
      --data.max_samples 100000 --data.max_len 4024 --rollout.max_new_tokens 3000
      --rollout.batch_size 1024 --rollout.n_samples_per_prompt 8 --rollout.micro_batch_size 2
      --rollout.temperature 0.6 --rollout.top_p 1.0
      --train.batch_size 128 --train.micro_batch_size 2 --train.max_epochs 1 --train.num_episodes 20
      --algo.advantage.estimator gae --algo.advantage.gamma 1.0 --algo.advantage.lambd 0.95
      --actor.eps_clip 0.2 --critic.value_clip 0.2 --algo.kl.init_coef 0.01 --algo.kl.estimator k1
      --actor.adam.lr 5e-7 --critic.adam.lr 9e-6
      --actor.adam.betas 0.9 0.95 --critic.adam.betas 0.9 0.95
      --actor.adam.weight_decay 0.0 --critic.adam.weight_decay 0.0
      --actor.lr_scheduler cosine_with_min_lr --critic.lr_scheduler cosine_with_min_lr
      --actor.lr_warmup_ratio 0.03 --critic.lr_warmup_ratio 0.03 --actor.max_norm 1.0 --critic.max_norm 1.0
      --ds.zero_stage 3 --ds.param_dtype bf16 --actor.gradient_checkpointing_enable
      --ds.attn_implementation flash_attention_2
      --ckpt.output_dir "$SAVE/model" --ckpt.path "$SAVE/ckpt" --ckpt.save_steps 4 --ckpt.max_num 3
      --ckpt.load_enable --ckpt.save_hf --logger.tensorboard_dir "$SAVE/tensorboard"
    )
    if version_ge "$v" 0.11.2; then a+=(--actor.loss_agg_mode seq-mean-token-mean); fi
  else
    a=(
      --actor_num_nodes 1 --actor_num_gpus_per_node 8
      --ref_num_nodes 1 --ref_num_gpus_per_node 8 --colocate_actor_ref
      --critic_num_nodes 1 --critic_num_gpus_per_node 8
      --vllm_num_engines 16 --vllm_tensor_parallel_size 1 --vllm_sync_backend nccl
      --pretrain "$MODEL"
      --remote_rm_url "$RM_URL"
      --prompt_data "$PROMPT_DATA" --input_key problem --label_key answer --apply_chat_template
      --max_samples 100000
      --rollout_batch_size 1024 --n_samples_per_prompt 8 --micro_rollout_batch_size 2
      --temperature 0.6 --top_p 1.0
      --train_batch_size 128 --micro_train_batch_size 2 --max_epochs 1 --num_episodes 20
      --advantage_estimator gae --gamma 1.0 --lambd 0.95 --eps_clip 0.2 --value_clip 0.2
      --init_kl_coef 0.01 --kl_estimator k1
      --actor_learning_rate 5e-7 --critic_learning_rate 9e-6 --adam_betas 0.9 0.95 --l2 0.0
      --lr_scheduler cosine_with_min_lr --lr_warmup_ratio 0.03 --max_norm 1.0
      --zero_stage 3 --gradient_checkpointing --attn_implementation flash_attention_2
      --save_path "$SAVE/model" --ckpt_path "$SAVE/ckpt" --save_steps 4 --max_ckpt_num 3 --load_checkpoint
      --save_hf_ckpt --use_tensorboard "$SAVE/tensorboard"
    )
    if version_ge "$v" 0.9.8; then a+=(--max_len 4024 --max_new_tokens 3000)
    else a+=(--prompt_max_len 1024 --generate_max_len 3000); fi
    if version_ge "$v" 0.9.2; then a+=(--param_dtype bf16); else a+=(--bf16); fi
  fi
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

mode=${1:-dry-run}
shift || true
VERSION=$(openrlhf_version)
if [[ -z "$VERSION" ]]; then
  case "$mode" in
    print|dry-run)
      VERSION=$NEWEST_TESTED
      echo "openrlhf is not installed for $OPENRLHF_PYTHON: flags for OpenRLHF $VERSION (set OPENRLHF_VERSION)" >&2 ;;
    run|submit) die "openrlhf is not installed for OPENRLHF_PYTHON=$OPENRLHF_PYTHON (or set OPENRLHF_VERSION)" ;;
  esac
fi
mapfile -t ARGS < <(openrlhf_args "${VERSION:-$NEWEST_TESTED}")
cd "$ROOT"
case "$mode" in
  print|dry-run)
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
  *) die "unknown mode '$mode' (dry-run, print, serve, run, submit)" ;;
esac
