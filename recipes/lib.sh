# Shared by the recipe wrappers: `source recipes/lib.sh`, then `recipe_main CONFIG "$@"`. Not run on its own.
#
# A wrapper takes a mode, then dotted overrides for rl-train (key.sub=value ...):
#   dry-run         print the plan (roles, resources, batch arithmetic, data counts); no GPU, no download
#   run             run the driver here (the default). With RAY_ADDRESS set (e.g. `auto` on a cluster node) the
#                   Ray roles go to that cluster, otherwise a single-node Ray is started (Ray recipes only)
#   head            `ray start --head` on this node (node 0 of a multi-node run)
#   worker HOST     `ray start --address HOST:PORT` on every other node
#   submit          `ray job submit` the run to the cluster from the head node (the driver runs on the head)
#   resume          like run, continuing from <output_dir>/checkpoints/latest
#
# Environment:
#   PYTHON          interpreter with this package installed (default: <repo>/.venv/bin/python if present, else python3)
#   GPUS_PER_NODE   GPUs each node offers Ray (default 8)
#   RAY_PORT        the head's GCS port (default 6379)
#   RAY_DASHBOARD   job-submission address for `submit` (default http://127.0.0.1:8265, i.e. run it on the head)
#   OUTPUT_ROOT     where runs go: <OUTPUT_ROOT>/<recipe name> (default <repo>/runs). On several nodes it must be
#                   a file system every node mounts at the same path: the ranks write their checkpoint shards there
#   REWARD_URL      an already running reward service (http://host:port); default: the driver starts one on a
#                   free loopback port (only the driver talks to it)
#   MATHRL_DATA_DIR the data directory for bare data names (default <repo>/../shared/data)
#   PRINT_ONLY=1    print the commands (ray, torchrun, rl-train) instead of running them

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
RAY_PORT=${RAY_PORT:-6379}
RAY_DASHBOARD=${RAY_DASHBOARD:-http://127.0.0.1:8265}
OUTPUT_ROOT=${OUTPUT_ROOT:-$ROOT/runs}

# Run a command, or only print it (shell-quoted, one line) with PRINT_ONLY=1.
run_cmd() {
  if [[ -n "${PRINT_ONLY:-}" ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}
rl_train() { run_cmd "$PYTHON" -m trainer.cli "$@"; }
rl_sft() { run_cmd "$PYTHON" -m trainer.sft_cli "$@"; }

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# The overrides every real run gets (the user's own come after them and win).
run_overrides() {  # CONFIG
  local name
  name=$(basename "$1" .yaml)
  echo "logging.output_dir=$OUTPUT_ROOT/$name"
  if [[ -n "${REWARD_URL:-}" ]]; then echo "reward.url=$REWARD_URL"; fi
}

ray_head() {
  run_cmd ray start --head --port "$RAY_PORT" --num-gpus "$GPUS_PER_NODE" --dashboard-host 0.0.0.0 "$@"
  echo "head started; on every other node: bash $0 worker $(hostname -I 2>/dev/null | awk '{print $1}')"
}

ray_worker() {  # HEAD_HOST
  [[ -n "${1:-}" ]] || die "worker needs the head node's address: $0 worker HEAD_HOST"
  run_cmd ray start --address "$1:$RAY_PORT" --num-gpus "$GPUS_PER_NODE"
}

# ray job submit: the driver runs on the head node, in this checkout (same path there), with the same data dir.
ray_submit() {  # CONFIG ARGS...   (rl-train's arguments after --config, in order)
  local config=$1; shift
  local cmd env_json
  cmd="cd $(printf %q "$ROOT") && $(printf %q "$PYTHON") -m trainer.cli --config $(printf %q "$config")"
  if (($#)); then cmd+=$(printf ' %q' "$@"); fi
  env_json='{"env_vars": {"OMP_NUM_THREADS": "1"'
  if [[ -n "${MATHRL_DATA_DIR:-}" ]]; then env_json+=", \"MATHRL_DATA_DIR\": \"$MATHRL_DATA_DIR\""; fi
  env_json+='}}'
  run_cmd ray job submit --address "$RAY_DASHBOARD" --runtime-env-json "$env_json" -- bash -c "$cmd"
}

recipe_main() {  # CONFIG [mode] [--flags] [overrides...]
  local config=$1; shift
  local mode=run
  case "${1:-}" in
    dry-run|run|head|worker|submit|resume) mode=$1; shift ;;
    -h|--help|help) sed -n '3,13p' "$ROOT/recipes/lib.sh"; return 0 ;;
  esac
  cd "$ROOT"
  # rl-train's flags (--resume, ...) go before the dotted overrides, which come last so that the user's win
  local -a flags=() overrides=() base=()
  local a
  for a in "$@"; do
    if [[ "$a" == --* ]]; then flags+=("$a"); else overrides+=("$a"); fi
  done
  if [[ "$mode" == resume ]]; then flags+=(--resume); fi
  case "$mode" in
    dry-run) "$PYTHON" -m trainer.cli --config "$config" --dry-run "${flags[@]}" "${overrides[@]}" ;;
    head)    ray_head "$@" ;;
    worker)  ray_worker "$@" ;;
    submit)
      mapfile -t base < <(run_overrides "$config")
      ray_submit "$config" "${flags[@]}" "${base[@]}" "${overrides[@]}" ;;
    run|resume)
      mapfile -t base < <(run_overrides "$config")
      rl_train --config "$config" "${flags[@]}" "${base[@]}" "${overrides[@]}" ;;
  esac
}
