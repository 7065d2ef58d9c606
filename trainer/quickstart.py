"""The CPU quickstart: SFT a tiny model, improve it with GRPO through the real reward service, and show it.

    python -m trainer.quickstart [--output-dir runs/quickstart] [--seed 0]
    python -m trainer.quickstart --output-dir runs/quickstart --reuse-sft --async-grpo 1   # GRPO asynchronously

No hub and no GPU. The stages, each the project's real code path:

1. Build a tiny Qwen2-style model and a BPE tokenizer trained locally (``trainer.models.tiny``).
2. SFT (``trainer.sft``, recipe ``recipes/quickstart_sft.yaml``) on synthetic arithmetic word problems
   (``trainer.data.synthetic``) with worked solutions from a *fallible teacher*.
3. GRPO (``RLLoop`` via ``trainer.build.build_run``, recipe ``recipes/quickstart_grpo.yaml``) from the SFT
   model on other train-split problems, rewards from the HTTP reward service on a loopback port, a greedy
   held-out eval every 25 steps.
4. The control, at the same time and on the other core: the SFT run *continued* from its last step (same
   data, optimizer state resumed, at the SFT's peak learning rate) for as long as GRPO runs (stopped with
   SIGTERM when GRPO ends), with a greedy held-out eval every minute.
5. Greedy eval of the three models on the same held-out problems (test split, disjoint from all training
   questions), a table, ``reward_accuracy.png`` and ``summary.json``.

Why a fallible teacher, and this one. The SFT data is what a weak teacher model would distil: 5 % of its
worked solutions carry an arithmetic slip to the end, 5 % box a wrong number, and on stories with two or three
events it stops one step early 70 % of the time (the last event is ignored) -- 56 % of the demonstrations are
wrong (``DemoNoise``; ``recipes/quickstart_sft.yaml``). Measured on the way there (every number in the report):

- Perfect demonstrations: more SFT beats RL at equal time (DESIGN.md's prototype: 68.5 % vs 62 %).
- Random mistakes only (30 % of solutions with an arithmetic slip, 10 % a wrong box, 10 % unboxed; wider
  number ranges; lr 1e-3 constant): imitation does not plateau under greedy decoding. An imitator's greedy
  output takes the most likely token at each step, and random mistakes are spread over many values, so they
  slow SFT down without capping it (held-out greedy accuracy after 600/800/1000 steps: 19/43.5/68.5 % vs
  38.5/59.5 % for clean data). From the 800-step model (53.5 % on the quickstart's held-out set) GRPO reached
  60 % in 150 steps while the same time of continued SFT reached 85.5 %: an RL demo built that way shows RL
  losing.
- What imitation cannot get past is a *systematic* mistake, one the teacher makes more often than not in a
  recognisable situation. The SFT model copies the majority: greedy, it stops early on every multi-step
  problem, while sampling it still finishes about a third of them. GRPO's correctness reward pays only for
  finished, right solutions, so the policy learns to finish (mean length and accuracy go up together);
  continued SFT keeps imitating the teacher. With a 60 % early-stop rate, 10 % slips and 600 SFT steps the
  SFT model did not always copy the majority (one seed finished 40 % of the multi-step problems already) and
  that seed gained only 4 points (the other +25); with 70 %, 5 % slips and 800 steps every seed gained
  36-41 points (seeds 0/1/2: +37.8/+41.0/+36.3, README "Figures").

So the quickstart shows the mechanism by which RL adds to SFT-then-RL: a verifiable reward corrects what the
demonstrations systematically get wrong. It is a designed toy, and the table shows the control beside it. A
stronger baseline that is not run here: with the golds in hand, SFT on only the demonstrations whose answer
is right (rejection sampling) would drop the truncated ones altogether.

Difficulty. Amounts 2-12, operands 2-9, factors 2-3 and one to three operations: small enough that a 0.6 M
parameter model (hidden 128, 2 layers) learns the arithmetic in 800 SFT steps on one core.

CPU threads: every process uses one torch thread (``OMP_NUM_THREADS=1``). On 2 cores, two OpenMP threads in a
process that shares the cores were measured 10-20x slower for these tiny matrices; GRPO and the control each
get one core.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
import logging
import os
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from eval.grading_backend import make_backend
from eval.harness import evaluate
from mathrl_core.completion import per_prompt_completions
from mathrl_core.rollout.hf import HFRollout
from mathrl_core.sampling import SamplingConfig
from trainer import checkpoint
from trainer.build import build_run
from trainer.config import RLConfig
from trainer.config_tree import load_config, public_dict
from trainer.data.synthetic import SyntheticConfig, SyntheticData, synthetic_records, write_jsonl
from trainer.sft import SFTConfig, SFTTrainer, synthetic_sft_records

REPO = Path(__file__).resolve().parents[1]
SFT_RECIPE = REPO / "recipes" / "quickstart_sft.yaml"
RL_RECIPE = REPO / "recipes" / "quickstart_grpo.yaml"
HELDOUT_SEED = 12345      # the held-out problems are the same for every run seed
RL_DATA_SEED_OFFSET = 1000
logger = logging.getLogger("trainer.quickstart")


# ------------------------------------------------------------------------------------------------ timing
def cpu_seconds() -> float:
    """user + sys CPU seconds of this process and its reaped children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class Stages:
    """Wall and CPU seconds per stage."""
    def __init__(self):
        self.t0, self.c0 = time.time(), cpu_seconds()
        self.records: dict[str, dict] = {}

    def run(self, name: str):
        stages = self

        class _Ctx:
            def __enter__(self):
                self.t, self.c = time.time(), cpu_seconds()
                logger.info("== %s", name)

            def __exit__(self, *exc):
                stages.records[name] = {"wall_s": round(time.time() - self.t, 1),
                                        "cpu_s": round(cpu_seconds() - self.c, 1)}
        return _Ctx()

    def total(self) -> dict:
        return {"wall_s": round(time.time() - self.t0, 1), "cpu_s": round(cpu_seconds() - self.c0, 1)}


# ------------------------------------------------------------------------------------------------ data
def write_data(out: Path, seed: int, n_heldout: int, n_rl: int, syn: SyntheticConfig) -> dict[str, Path]:
    """The RL prompt file (train split, another draw than the SFT data) and the held-out file (test split), with
    the SFT data's difficulty knobs ``syn``."""
    heldout = [{"question": r["question"], "answer": r["answer"], "id": i}
               for i, r in enumerate(synthetic_records(n_heldout, "test", seed=HELDOUT_SEED, config=syn))]
    rl = [{"question": r["question"], "answer": r["answer"]}
          for r in synthetic_records(n_rl, "train", seed=seed + RL_DATA_SEED_OFFSET, config=syn)]
    return {"heldout": write_jsonl(out / "data" / "heldout.jsonl", heldout),
            "rl_prompts": write_jsonl(out / "data" / "rl_prompts.jsonl", rl)}


# ------------------------------------------------------------------------------------------------ eval
def greedy_eval(model, tokenizer, heldout: Path, grader, *, max_new_tokens: int, micro_batch_size: int = 64,
                template: str = "qwen_boxed", out_dir: Optional[Path] = None) -> dict:
    """Greedy held-out accuracy, no-answer rate and mean response length (tokens) through the eval harness
    (the same generation path and grader as the RL loop's eval hook)."""
    rollout = HFRollout(model, tokenizer, micro_batch_size=micro_batch_size)

    def generate_fn(prompts, n):
        out = rollout.generate(prompts, SamplingConfig(n=n, temperature=0.0, max_new_tokens=max_new_tokens))
        return per_prompt_completions(out, len(prompts), n)

    m = evaluate(generate_fn, str(heldout), tokenizer=tokenizer, template=template, grader=grader, out_dir=out_dir)
    name = heldout.stem
    return {"accuracy": m[f"eval/{name}/pass@1"], "no_answer_rate": m[f"eval/{name}/no_answer_rate"],
            "mean_length": m[f"eval/{name}/avg_len"]}


# ------------------------------------------------------------------------------------------------ configs
def sft_config(out: Path, seed: int, overrides: list[str]):
    return load_config(SFTConfig, SFT_RECIPE, [
        f"logging.output_dir={out / 'sft'}", f"train.seed={seed}", f"data.synthetic.seed={seed}",
        f"model.tiny.seed={seed}", f"model.tiny.out_dir={out / f'tiny_model_seed{seed}'}", *overrides])


def rl_config(out: Path, seed: int, sft_dir: Path, data: dict[str, Path], overrides: list[str], tag: str = ""):
    return load_config(RLConfig, RL_RECIPE, [
        f"model.pretrain={sft_dir}", f"data.train={data['rl_prompts']}", f"eval.data={data['heldout']}",
        f"logging.output_dir={out / f'grpo{tag}'}", f"train.seed={seed}", *overrides])


# ------------------------------------------------------------------------------------------------ control
def control_main(cfg_tree: dict, ckpt: str, heldout: str, eval_every_s: float, max_new_tokens: int,
                 result_path: str, ready=None) -> None:
    """The same-time control (a child process): resume the SFT run from its final checkpoint and keep going
    until SIGTERM; greedy held-out evals every ``eval_every_s`` seconds of training, and at the end.
    ``ready`` (an event) is set once SIGTERM is handled: the parent must not send it before."""
    import signal

    early_stop = []  # SIGTERM before training starts (GRPO already done): still train one step, then stop
    signal.signal(signal.SIGTERM, lambda *_: early_stop.append(True))
    if ready is not None:
        ready.set()
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s control %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    cfg = load_config(SFTConfig, None, [], base=cfg_tree)
    trainer = SFTTrainer(cfg)
    trainer.restore(Path(ckpt))
    start_step, start_s = trainer.step, trainer.train_seconds
    grader = make_backend("pool", workers=1)
    curve, next_eval = [], start_s + eval_every_s
    t_wall = time.time()

    def on_step(step: int, m: dict) -> None:
        nonlocal next_eval
        if trainer.train_seconds >= next_eval:
            r = greedy_eval(trainer.model, trainer.tokenizer, Path(heldout), grader, max_new_tokens=max_new_tokens)
            curve.append({"step": step - start_step, "train_s": round(trainer.train_seconds - start_s, 2), **r})
            next_eval += eval_every_s

    try:
        trainer.train(on_step=on_step, should_stop=lambda: bool(early_stop))
        train_wall = time.time() - t_wall
        final = greedy_eval(trainer.model, trainer.tokenizer, Path(heldout), grader, max_new_tokens=max_new_tokens,
                            out_dir=Path(cfg.logging.output_dir) / "eval_final")
    finally:
        grader.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(result_path).write_text(json.dumps({
        "final": final, "curve": curve, "steps": trainer.step - start_step,
        "train_s": round(trainer.train_seconds - start_s, 2), "wall_s": round(train_wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}, indent=2))


# ------------------------------------------------------------------------------------------------ report
def sft_data_stats(cfg) -> dict:
    """How many SFT demonstrations carry which mistake (synthetic data only)."""
    if cfg.data.train != "synthetic":
        return {"source": cfg.data.train}

    kinds = Counter(r.extra["noise"] for r in synthetic_sft_records(cfg.data.synthetic, "train", cfg.train.seed))
    n = sum(kinds.values())
    noise = cfg.data.synthetic.noise if cfg.data.synthetic and cfg.data.synthetic.noise else None
    return {"examples": n, "noise": asdict(noise) if noise else None, "kinds": dict(kinds),
            "correct_and_boxed_fraction": round(kinds.get("clean", 0) / max(n, 1), 4)}


def rl_curves(history: list[dict], heldout_name: str) -> tuple[list[dict], list[dict]]:
    """Per-step training reward/accuracy and the eval-hook points (x = cumulative training seconds)."""
    steps, evals, t = [], [], 0.0
    for i, m in enumerate(history, 1):
        t += m.get("time/step", 0.0)
        steps.append({"step": i, "train_s": round(t, 2), "reward": m.get("reward/mean"),
                      "sample_accuracy": m.get("reward/accuracy"), "length": m.get("response/length_mean")})
        key = f"eval/{heldout_name}/pass@1"
        if key in m:
            evals.append({"step": i, "train_s": round(t, 2), "accuracy": m[key],
                          "no_answer_rate": m.get(f"eval/{heldout_name}/no_answer_rate"),
                          "mean_length": m.get(f"eval/{heldout_name}/avg_len")})
    return steps, evals


def format_table(s: dict) -> str:
    rows = [("after SFT", s["sft"], f"{s['sft_steps']} SFT steps"),
            ("after GRPO", s["rl"], f"+{s['rl_steps']} GRPO steps, {s['rl_train_s']:.0f} s"
             + (f", asynchronous (max_staleness {s['grpo_max_staleness']})" if s.get("grpo_max_staleness") else "")),
            ("SFT control", s["control"], f"+{s['control_steps']} SFT steps, {s['control_train_s']:.0f} s")]
    best = s.get("control_best")
    lines = [f"Held-out accuracy, greedy, {s['heldout_problems']} problems (seed {s['seed']})", "",
             "| model        | accuracy | no answer | mean length | training |",
             "|--------------|---------:|----------:|------------:|----------|"]
    for name, r, note in rows:
        lines.append(f"| {name:<12} | {100 * r['accuracy']:7.1f}% | {100 * r['no_answer_rate']:8.1f}% "
                     f"| {r['mean_length']:7.1f} tok | {note} |")
    if best is not None:
        lines.append(f"| control best | {100 * best['accuracy']:7.1f}% | {100 * best['no_answer_rate']:8.1f}% "
                     f"| {best['mean_length']:7.1f} tok | its best of {len(s['control_curve']) + 1} evals "
                     f"(picked on the test set: optimistic) |")
    lines += ["", f"GRPO - SFT: {100 * (s['rl_accuracy'] - s['sft_accuracy']):+.1f} points;  "
                  f"GRPO - control: {100 * (s['rl_accuracy'] - s['control_accuracy']):+.1f} points;  "
                  f"control - SFT: {100 * (s['control_accuracy'] - s['sft_accuracy']):+.1f} points"]
    return "\n".join(lines)


def moving_average(ys: list, k: int) -> list:
    """Trailing mean over the last ``k`` values (fewer at the start)."""
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= k:
            acc -= ys[i - k]
        out.append(acc / min(i + 1, k))
    return out


def make_plot(path: Path, s: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = [p["step"] for p in s["rl_curve"]]
    for key, color, label in (("reward", "tab:blue", "reward (mean)"),
                              ("sample_accuracy", "tab:green", "accuracy of samples (T=1)")):
        ys = [p[key] for p in s["rl_curve"]]
        a.plot(steps, ys, color=color, alpha=0.25, lw=0.8)
        a.plot(steps, moving_average(ys, 10), color=color, label=f"{label}, 10-step mean")
    ev = s["rl_eval_curve"]
    a.plot([0] + [p["step"] for p in ev], [s["sft_accuracy"]] + [p["accuracy"] for p in ev], "o-",
           color="tab:red", label="held-out accuracy (greedy)")
    a.set_xlabel("GRPO step")
    a.set_ylabel("reward / accuracy")
    a.set_title("GRPO training")
    a.grid(alpha=0.3)
    a.legend(loc="lower right", fontsize=8)
    b.plot([0] + [p["train_s"] for p in ev], [s["sft_accuracy"]] + [p["accuracy"] for p in ev], "o-",
           color="tab:red", label="GRPO")
    cc = s["control_curve"]
    b.plot([0] + [p["train_s"] for p in cc] + [s["control_train_s"]],
           [s["sft_accuracy"]] + [p["accuracy"] for p in cc] + [s["control_accuracy"]], "s--",
           color="tab:gray", label="SFT continued (control)")
    b.axhline(s["sft_accuracy"], color="black", lw=0.8, ls=":", label="after SFT")
    b.set_xlabel("training seconds after SFT (one core each)")
    b.set_ylabel("held-out accuracy (greedy)")
    b.set_title("GRPO vs. the same time of more SFT")
    b.grid(alpha=0.3)
    b.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"CPU quickstart, seed {s['seed']}: held-out {100 * s['sft_accuracy']:.1f}% after SFT -> "
                 f"{100 * s['rl_accuracy']:.1f}% after GRPO (control {100 * s['control_accuracy']:.1f}%)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ pipeline
def run(output_dir: str | Path, seed: int = 0, *, sft_overrides: list[str] = (), rl_overrides: list[str] = (),
        n_heldout: int = 400, n_rl_prompts: int = 2000, control_eval_every_s: float = 60.0,
        reuse_sft: bool = False, async_grpo: int = 0) -> dict:
    """The whole quickstart; returns the summary (also written to ``<output_dir>/summary.json``).

    ``reuse_sft``: if ``<output_dir>/sft`` already holds a finished SFT stage of the same length, start from it
    (to re-run only GRPO and the control).
    ``async_grpo``: run the GRPO stage asynchronously with ``rollout.max_staleness=async_grpo`` (the rollout in a
    process of its own, ``trainer.async_rl``); its files get an ``_async`` suffix (``grpo_async/``,
    ``summary_async.json``, ...), so a synchronous run in the same directory stays (``--reuse-sft`` then runs
    only GRPO and the control again). The control then shares the 2 cores with two GRPO processes."""
    import multiprocessing as mp

    import torch

    torch.set_num_threads(1)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages()

    with stages.run("data"):
        sft_cfg = sft_config(out, seed, list(sft_overrides))
        data = write_data(out, seed, n_heldout, n_rl_prompts, sft_cfg.data.synthetic or SyntheticData())
    tag = "_async" if async_grpo else ""
    rl_overrides = [*rl_overrides, *([f"rollout.max_staleness={async_grpo}"] if async_grpo else [])]
    rl_cfg = rl_config(out, seed, out / "sft" / "model", data, rl_overrides, tag)
    max_new = rl_cfg.eval.max_new_tokens or rl_cfg.rollout.max_new_tokens
    grader = make_backend("pool", workers=1)
    try:
        with stages.run("sft"):
            sft = SFTTrainer(sft_cfg)
            done = checkpoint.latest(out / "sft") if reuse_sft else None
            info = out / "sft" / "model" / "sft_info.json"
            same = info.is_file() and (json.loads(info.read_text())["sft_config"]
                                       == json.loads(json.dumps(public_dict(sft_cfg), default=str)))
            if reuse_sft and not same:
                logger.warning("--reuse-sft: no finished SFT stage with this config in %s; running SFT", out)
            if done is not None and same and json.loads((done / checkpoint.STATE_FILE).read_text())["step"] == sft.total_steps:
                logger.info("reusing the SFT stage of %s (%s)", out, done)
                sft.restore(done)
                sft_dir, sft_ckpt = out / "sft" / "model", done
            else:
                sft_dir = sft.train()
                sft_ckpt = sft.save_checkpoint()
        with stages.run("eval_sft"):
            sft_res = greedy_eval(sft.model, sft.tokenizer, data["heldout"], grader, max_new_tokens=max_new,
                                  out_dir=out / "eval" / "sft")
        logger.info("after SFT: %s", sft_res)
        del sft

        # GRPO here and the control in a child process, at the same time (one core each).
        control_tree = asdict(sft_cfg)
        control_tree["logging"].update(output_dir=str(out / f"control{tag}"), save_steps=0, progress_bar=False,
                                       log_every_steps=100)
        # continued at the SFT's peak learning rate (not the decayed one), with its optimizer state
        control_tree["train"].update(max_steps=10**9, schedule_steps=sft_cfg.train.max_steps, max_time_s=None,
                                     lr_scheduler="constant", warmup_ratio=0.0)
        control_tree["model"].update(pretrain=str(sft_dir), tiny=None)
        control_tree["eval"].update(every_steps=0)
        control_result = out / f"control{tag}" / "result.json"
        control_result.parent.mkdir(parents=True, exist_ok=True)
        if control_result.exists():
            control_result.unlink()
        ctx = mp.get_context("spawn")
        control_ready = ctx.Event()
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        control = ctx.Process(target=control_main, name="sft-control",
                              args=(control_tree, str(sft_ckpt), str(data["heldout"]), control_eval_every_s,
                                    max_new, str(control_result), control_ready))
        with stages.run("grpo+control"):
            control.start()
            try:
                loop = build_run(rl_cfg)
                try:
                    t_rl = time.time()
                    history = loop.run()
                    rl_wall = time.time() - t_rl
                finally:
                    loop.reward.close()
                    if loop.tracker:
                        loop.tracker.close()
                    if async_grpo:
                        loop.rollout.close()
                # a SIGTERM that lands before the child installed its handler would kill it outright
                deadline = time.time() + 600
                while not control_ready.wait(1.0) and control.is_alive() and time.time() < deadline:
                    pass
                control.terminate()  # SIGTERM: the control finishes its step, saves, evaluates, exits
                with stages.run("eval_grpo"):
                    rl_res = greedy_eval(loop.policy.model, loop.tokenizer, data["heldout"], grader,
                                         max_new_tokens=max_new, out_dir=out / "eval" / f"grpo{tag}")
                control.join(timeout=600)
            finally:
                if control.is_alive():
                    control.kill()
                    control.join()
        if control.exitcode != 0 or not control_result.is_file():
            raise RuntimeError(f"the SFT control process failed (exit code {control.exitcode}); see the log above")
        ctl = json.loads(control_result.read_text())
    finally:
        grader.close()

    rl_steps_curve, rl_eval_curve = rl_curves(history, Path(data["heldout"]).stem)
    s = {
        "seed": seed, "heldout_problems": n_heldout, "grpo_max_staleness": async_grpo,
        "sft_accuracy": sft_res["accuracy"], "rl_accuracy": rl_res["accuracy"],
        "control_accuracy": ctl["final"]["accuracy"],
        "control_best": max([ctl["final"], *ctl["curve"]], key=lambda r: r["accuracy"]),
        "rl_gain_points": round(100 * (rl_res["accuracy"] - sft_res["accuracy"]), 2),
        "rl_minus_control_points": round(100 * (rl_res["accuracy"] - ctl["final"]["accuracy"]), 2),
        "sft": sft_res, "rl": rl_res, "control": ctl["final"],
        "sft_steps": sft_cfg.train.max_steps, "rl_steps": len(history),
        "rl_train_s": round(sum(m.get("time/step", 0.0) for m in history), 2), "rl_wall_s": round(rl_wall, 2),
        "control_steps": ctl["steps"], "control_train_s": ctl["train_s"], "control_wall_s": ctl["wall_s"],
        "control_cpu_s": ctl["cpu_s"],
        "rl_eval_hook_final_accuracy": rl_eval_curve[-1]["accuracy"] if rl_eval_curve else None,
        "rl_curve": rl_steps_curve, "rl_eval_curve": rl_eval_curve, "control_curve": ctl["curve"],
        "sft_data": sft_data_stats(sft_cfg),
        "config": {"sft": public_dict(sft_cfg), "rl": public_dict(rl_cfg)},
        "stages": stages.records, "total": stages.total(),
        "paths": {"sft_model": str(sft_dir), "grpo_checkpoints": str(out / f"grpo{tag}" / "checkpoints"),
                  "control_model": str(out / f"control{tag}" / "model"), "heldout": str(data["heldout"])},
    }
    s["table"] = format_table(s)
    (out / f"table{tag}.md").write_text(s["table"] + "\n")
    s["plot"] = str(make_plot(out / f"reward_accuracy{tag}.png", s))
    s["total"] = stages.total()
    (out / f"summary{tag}.json").write_text(json.dumps(s, indent=2, default=str))
    return s


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer.quickstart", description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", default="runs/quickstart")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout", type=int, default=400, help="held-out problems (test split)")
    p.add_argument("--rl-prompts", type=int, default=2000)
    p.add_argument("--control-eval-every", type=float, default=60.0,
                   help="seconds of control training between its held-out evals")
    p.add_argument("--reuse-sft", action="store_true",
                   help="start from the finished SFT stage already in --output-dir (re-run GRPO and the control)")
    p.add_argument("--async-grpo", type=int, default=0, metavar="K",
                   help="run the GRPO stage asynchronously, rollout.max_staleness=K (files get an _async suffix)")
    p.add_argument("--sft", action="append", default=[], metavar="KEY=VALUE",
                   help="override of recipes/quickstart_sft.yaml (repeatable), e.g. --sft train.max_steps=400")
    p.add_argument("--rl", action="append", default=[], metavar="KEY=VALUE",
                   help="override of recipes/quickstart_grpo.yaml (repeatable), e.g. --rl train.total_steps=50")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per reward request otherwise
    s = run(args.output_dir, args.seed, sft_overrides=args.sft, rl_overrides=args.rl, n_heldout=args.heldout,
            n_rl_prompts=args.rl_prompts, control_eval_every_s=args.control_eval_every, reuse_sft=args.reuse_sft,
            async_grpo=args.async_grpo)
    tag = "_async" if args.async_grpo else ""
    print()
    print(s["table"])
    print(f"\nwall {s['total']['wall_s']:.0f} s, CPU (user+sys, all processes) {s['total']['cpu_s']:.0f} s; "
          f"plot {s['plot']}; summary {Path(args.output_dir) / f'summary{tag}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
