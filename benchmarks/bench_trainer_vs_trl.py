"""GRPO throughput: this trainer vs TRL's GRPOTrainer on the same tiny model and settings, in one run.

Both sides: the same locally built Qwen2-style model and tokenizer (or, with ``--model``, a real checkpoint such as
SmolLM2-135M-Instruct from ``rl-prepare-model``), the same synthetic prompts rendered with the
same chat template (system "Please reason step by step ..."), B prompts x G samples per step, the same
max completion length, temperature 1, beta 0, one optimizer step per generation batch (on-policy), the same
loss aggregation, and the same reward: the HTTP reward service through its client (TRL through the
``reward_service.adapters.TRLReward`` adapter). Generation is HF ``generate`` on both sides (TRL without
vLLM; ours with the HF backend, which by default plugs a preallocated KV cache, grouped-query decode attention,
one prefill per prompt group and its own sampler into ``generate``: ``rollout.hf_fast_decode``), and our update
forwards each prompt once per group (``train.shared_prompt_forward``). Each side runs a warm-up step, then
``--steps`` timed steps; the two sides alternate ``--rounds`` times so load on the machine affects both alike.

    python benchmarks/bench_trainer_vs_trl.py --steps 4 --rounds 3
    # the real model (135 M parameters: smaller steps so that a round takes minutes, not an hour)
    python benchmarks/bench_trainer_vs_trl.py --model models/smollm2-135m --prompts 4 --group 4 \
        --max-new-tokens 32 --steps 2 --rounds 2

The script re-executes itself with glibc's malloc thresholds fixed (``MALLOC_MMAP_THRESHOLD_`` 32 MB,
``MALLOC_TRIM_THRESHOLD_`` 256 MB) unless they are already set. Left dynamic, glibc moves its mmap threshold
with the process's allocation history, so in one process each side's speed depends on what the other side
allocated: TRL's GRPOTrainer measured 12 to 32 samples/s in this script depending only on that (12 with the
threshold pinned at 128 kB, where every mid-sized tensor is a fresh mmap and page-faults). Fixed high
thresholds give both sides their fastest allocator, whatever ran before.
    # ours with stock generate and the unshared update, to see what those two options give:
    python benchmarks/bench_trainer_vs_trl.py --override rollout.hf_fast_decode=false \
        --override train.shared_prompt_forward=false
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOSS_TYPES = {"grpo": "seq_mean_token_mean", "dapo": "token_mean", "dr_grpo": "seq_sum"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=8, help="prompts per step (B)")
    p.add_argument("--group", type=int, default=8, help="samples per prompt (G)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="timed steps per round and side")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--loss", choices=sorted(LOSS_TYPES), default="grpo")
    p.add_argument("--model", default=None,
                   help="a real checkpoint for both sides instead of the tiny model: an HF directory or a GGUF "
                        "model (e.g. models/smollm2-135m from rl-prepare-model smollm2-135m-instruct)")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra dotted config override for our trainer (repeatable)")
    p.add_argument("--json", help="write the results here")
    return p.parse_args()


MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


def main():
    args = parse_args()
    if any(k not in os.environ for k in MALLOC_ENV):  # glibc reads these at start-up: re-execute with them
        os.execve(sys.executable, [sys.executable, *sys.argv], {**MALLOC_ENV, **os.environ})
    import torch
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    from mathrl_core.models.gguf import resolve_model_path
    from reward_service.client import start_service
    from trainer.data.synthetic import synthetic_records
    from trainer.models.tiny import save_tiny_checkpoint

    work = Path(tempfile.mkdtemp(prefix="bench_trl_"))
    if args.model:  # a GGUF model is converted once (cached); both sides load the same HF directory
        model_dir, shape = Path(resolve_model_path(args.model)), "real checkpoint"
    else:
        model_dir = save_tiny_checkpoint(work / "model", seed=0, vocab_size=1000, hidden_size=args.hidden,
                                         num_layers=args.layers, num_heads=4, num_kv_heads=2)
        shape = f"{args.hidden}x{args.layers}"
    records = synthetic_records(512, "train", seed=0)
    svc = start_service(workers=1)
    print(f"model {model_dir} ({shape}), reward service {svc.url}, "
          f"B={args.prompts} G={args.group} max_new_tokens={args.max_new_tokens} loss={args.loss} "
          f"threads={args.threads}", flush=True)
    try:
        ours = OursRunner(args, model_dir, records, svc.url, work / "ours")
        trl = TRLRunner(args, model_dir, records, svc.url, work / "trl")
        results = {"ours": [], "trl": []}
        for r in range(args.rounds):
            for name, runner in (("trl", trl), ("ours", ours)):
                secs, samples, tokens = runner.run(args.steps)
                results[name].append({"seconds": secs, "samples": samples, "tokens": tokens})
                print(f"round {r + 1} {name:4s}: {samples / secs:7.2f} samples/s  {tokens / secs:8.1f} gen tok/s "
                      f"({samples} samples, {secs:.1f}s)", flush=True)
    finally:
        svc.stop()
    summary = {}
    for name, rows in results.items():
        secs = sum(x["seconds"] for x in rows)
        summary[name] = {"samples_per_s": sum(x["samples"] for x in rows) / secs,
                         "gen_tokens_per_s": sum(x["tokens"] for x in rows) / secs}
    summary["ratio_samples_per_s"] = summary["ours"]["samples_per_s"] / summary["trl"]["samples_per_s"]
    summary["settings"] = vars(args) | {"model_dir": str(model_dir)} | {k: os.environ[k] for k in MALLOC_ENV}
    print(json.dumps(summary, indent=2))
    print(f"\nours / TRL samples/s: {summary['ratio_samples_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


class OursRunner:
    def __init__(self, args, model_dir, records, url, out_dir):
        from trainer.build import build_run
        from trainer.config import RLConfig
        from trainer.config_tree import load_config

        n = args.prompts * args.group
        cfg = load_config(RLConfig, None, [
            f"model.pretrain={model_dir}", "model.dtype=float32", "data.train=synthetic", "data.synthetic.n=512",
            "data.template=qwen_boxed", f"rollout.prompts_per_step={args.prompts}", f"rollout.n={args.group}",
            f"rollout.max_new_tokens={args.max_new_tokens}", "rollout.temperature=1.0", f"rollout.micro_batch_size={n}",
            "algorithm.advantage=grpo", "algorithm.kl_coef=0.0", f"algorithm.loss_agg={LOSS_TYPES[args.loss]}",
            f"train.minibatch_size={n}", f"train.micro_batch_size={n}", "train.ppo_epochs=1",
            "train.actor_lr=1e-5", "train.total_steps=100000", f"reward.url={url}", "reward.scheme=simplerl",
            f"logging.output_dir={out_dir}", "logging.tensorboard=false", "logging.progress_bar=false",
            *args.override])
        self.loop = build_run(cfg)
        self.loop.train_step(1)  # warm-up
        self.step = 1

    def run(self, steps):
        samples = tokens = 0
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step += 1
            m = self.loop.train_step(self.step)
            samples += self.loop.cfg.samples_per_step
            tokens += m["response/length_mean"] * self.loop.cfg.samples_per_step
        return time.perf_counter() - t0, samples, tokens


class TRLRunner:
    def __init__(self, args, model_dir, records, url, out_dir):
        from datasets import Dataset
        from transformers import AutoTokenizer, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        from reward_service.adapters import TRLReward
        from mathrl_core.templates import BOXED_INSTRUCTION

        self.args = args
        n = args.prompts * args.group
        ds = Dataset.from_list([{"prompt": [{"role": "system", "content": BOXED_INSTRUCTION},
                                            {"role": "user", "content": r["question"]}],
                                 "answer": r["answer"]} for r in records])
        cfg = GRPOConfig(
            output_dir=str(out_dir), per_device_train_batch_size=n, gradient_accumulation_steps=1,
            num_generations=args.group, steps_per_generation=1, num_iterations=1,
            max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0, beta=0.0,
            loss_type=args.loss, learning_rate=1e-5, max_steps=10**6, logging_steps=10**6, save_strategy="no",
            report_to="none", use_cpu=True, bf16=False, disable_tqdm=True, seed=0, dataloader_num_workers=0,
            log_completions=False)
        tok = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
        self.tokens = [0]
        runner = self

        class Budget(TrainerCallback):
            """Stop after ``budget`` steps; time from the end of the first step (TRL's per-``train()`` set-up
            and that step are not counted) to the end of the last."""

            def on_step_end(self, a, state, control, **kw):
                runner.done += 1
                if runner.done == 1:
                    runner.t_first = time.perf_counter()
                    runner.tokens[0] = 0
                runner.t_last = time.perf_counter()
                if runner.done >= runner.budget:
                    control.should_training_stop = True
                return control

        self.reward = TRLReward(url, gold_column="answer", scheme="simplerl")
        orig = self.reward.__call__

        def counting_reward(*a, completion_ids=None, **kw):
            if completion_ids is not None:
                self.tokens[0] += sum(len(c) for c in completion_ids)
            return orig(*a, completion_ids=completion_ids, **kw)

        counting_reward.__name__ = self.reward.__name__
        self.trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[counting_reward], args=cfg, train_dataset=ds,
                                   processing_class=tok, callbacks=[Budget()])
        self.samples_per_step = n
        self.done, self.budget, self.t_first, self.t_last = 0, 1, 0.0, 0.0
        self.trainer.train()  # warm-up step

    def run(self, steps):
        """``steps`` timed optimizer steps (one extra untimed step first; the model and optimizer persist)."""
        self.done, self.budget = 0, steps + 1
        self.trainer.train()
        return self.t_last - self.t_first, (self.done - 1) * self.samples_per_step, self.tokens[0]

if __name__ == "__main__":
    main()
