"""The CPU tool demo: reinforcement learning teaches a tiny model to reach for a Python tool for arithmetic it
cannot do in its head.

    python -m trainer.tool_demo [--seeds 0,1,2] [--output-dir runs/tool_demo]

Task (``trainer.data.tool_tasks``): word problems that multiply a 3-digit by a 2-digit number or divide a 5-digit
number by a 2-digit one, answer in ``\\boxed{}``. Per seed, a tiny model (hidden 128, 2 layers, a tokenizer
trained locally) is fine-tuned, under Qwen2.5-Math's tool-integrated-reasoning prompt (``qwen_tir``), on the
worked solutions of a teacher who can multiply in its head and uses the tool on only ``--tool-fraction`` (30 %) of
the problems: ``We need 347 * 86.`` then either a ToRL tool call (```` ```python print(347 * 86) ``` ```` and the
```` ```output ```` block with what the executor printed) or ``347 * 86 = 29842.`` The student cannot multiply:
imitating the teacher's mental arithmetic gets it nothing, and it imitates the teacher's preference for it. The
same SFT model is then trained with GRPO twice, for the same steps:

- ``tool``: the sandboxed executor in the rollout loop (``rollout.tools``): a tool call gets the real output;
- ``no_tool``: the same model and prompt without an executor: a tool call's output block is the model's own guess.

Held-out accuracy (greedy, on problems no training set holds) and tool calls per sample of the SFT model with and
without the executor, and of each arm's final model in its own setting (the tool arm's also without the executor).
Every stage is the project's real code path: SFT (``trainer.sft``), GRPO (``RLLoop`` through the HTTP reward
service, the tool rollout wrapping the HF backend), the eval harness -- with the executor through the same
``ToolRollout`` that ``rl-eval run --tools python`` uses. Jobs (one SFT per seed, then its two GRPO arms) run two
at a time, one core each.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import random
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Optional

import torch

from eval.grading_backend import make_backend
from eval.harness import evaluate
from mathrl_core.completion import per_prompt_completions
from mathrl_core.rollout.hf import HFRollout
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import TEMPLATES
from mathrl_core.tools.config import ToolConfig
from mathrl_core.tools.metrics import tool_metrics
from mathrl_core.tools.rollout import ToolRollout
from trainer.build import build_run
from trainer.config import RLConfig
from trainer.config_tree import load_config
from trainer.data.synthetic import write_jsonl
from trainer.data.tool_tasks import generate_tasks
from trainer.models.tiny import MATH_SYMBOLS, save_tiny_checkpoint
from trainer.sft import SFTConfig, SFTTrainer

REPO = Path(__file__).resolve().parents[1]
SFT_RECIPE = REPO / "recipes" / "tool_demo_sft.yaml"
RL_RECIPE = REPO / "recipes" / "tool_demo_grpo.yaml"
HELDOUT_SEED = 4242       # the held-out problems are the same for every seed
ARMS = ("tool", "no_tool")
TEMPLATE = "qwen_tir"
logger = logging.getLogger("trainer.tool_demo")


# ------------------------------------------------------------------------------------------------ data, model
def write_data(out: Path, seed: int, n_sft: int, n_rl: int, n_heldout: int, tool_fraction: float) -> dict[str, Path]:
    """The teacher's SFT demonstrations (a ``tool_fraction`` share uses the tool, the rest is mental arithmetic),
    RL prompts (other train problems) and held-out problems (the test split, the same for every seed)."""
    tasks = generate_tasks(n_sft + n_rl, "train", seed=seed)
    demos, rl = tasks[:n_sft], tasks[n_sft:]
    held = generate_tasks(n_heldout, "test", seed=HELDOUT_SEED)
    rng = random.Random(f"mathrl-tool-demo-teacher-{seed}")
    sft = [{"question": t.question, "response": t.tool_solution() if rng.random() < tool_fraction
            else t.direct_solution()} for t in demos]
    return {
        "sft": write_jsonl(out / "data" / "sft.jsonl", sft),
        "rl_prompts": write_jsonl(out / "data" / "rl_prompts.jsonl",
                                  [{"question": t.question, "answer": t.answer} for t in rl]),
        "heldout": write_jsonl(out / "data" / "heldout.jsonl",
                               [{"question": t.question, "answer": t.answer, "id": i} for i, t in enumerate(held)]),
    }


def build_tiny_model(out: Path, seed: int) -> Path:
    """The tiny Qwen2-style model and its tokenizer (trained on problems, solutions and the prompts' texts)."""
    tasks = generate_tasks(2000, "train", seed=10_000 + seed)
    corpus = [MATH_SYMBOLS, " ".join(str(i) for i in range(1000)), "```python print( ) ``` ```output"]
    corpus += [x for t in TEMPLATES.values() for x in (t.system, t.instruction) if x]
    corpus += [x for t in tasks for x in (t.question, t.tool_solution(), t.direct_solution())]
    return save_tiny_checkpoint(out / "tiny_model", corpus=corpus, vocab_size=700, seed=seed, hidden_size=128,
                                num_layers=2, num_heads=4, num_kv_heads=2)


# ------------------------------------------------------------------------------------------------ eval
def greedy_eval(model, tokenizer, heldout: Path, grader, max_new_tokens: int, template: str,
                tools: Optional[ToolConfig] = None, executor=None, out_dir: Optional[Path] = None) -> dict:
    """Greedy held-out accuracy through the eval harness; with ``tools`` the HF rollout is wrapped in the tool
    rollout (the rl-eval --tools path)."""
    backend = HFRollout(model, tokenizer, micro_batch_size=64)
    if tools is not None:
        backend = ToolRollout(backend, tools, executor=executor)
    infos = []

    def generate_fn(prompts, n):
        out = backend.generate(prompts, SamplingConfig(n=n, temperature=0.0, max_new_tokens=max_new_tokens))
        infos.extend(out.infos or [])
        return per_prompt_completions(out, len(prompts), n)

    m = evaluate(generate_fn, str(heldout), tokenizer=tokenizer, template=template, grader=grader, out_dir=out_dir)
    name = heldout.stem
    res = {"accuracy": m[f"eval/{name}/pass@1"], "no_answer_rate": m[f"eval/{name}/no_answer_rate"],
           "mean_length": m[f"eval/{name}/avg_len"]}
    if infos:
        res["tool_calls_per_sample"] = tool_metrics(infos)["tools/calls_per_sample"]
    return res


# ------------------------------------------------------------------------------------------------ jobs
def _child_init() -> None:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def rl_config(out: Path, arm: str, seed: int, sft_dir: Path, data: dict, overrides=()) -> RLConfig:
    tools = [] if arm == "tool" else ["rollout.tools=null"]
    return load_config(RLConfig, RL_RECIPE, [
        f"model.pretrain={sft_dir}", f"data.train={data['rl_prompts']}",
        f"logging.output_dir={out / arm / 'grpo'}", f"train.seed={seed}", *tools, *overrides])


def _evals(model, tokenizer, data: dict, settings, rl_cfg: RLConfig, out_dir: Path, tag: str) -> dict:
    """Greedy held-out accuracy of ``model`` with the tool and/or without it (``settings``: "tool", "no_tool")."""
    tools = rl_cfg.rollout.tools
    grader = make_backend("pool", workers=1)
    executor = tools.make_executor() if "tool" in settings else None
    res = {}
    try:
        for arm in settings:
            res[arm] = greedy_eval(model, tokenizer, Path(data["heldout"]), grader, rl_cfg.rollout.max_new_tokens,
                                   TEMPLATE, tools if arm == "tool" else None, executor, out_dir / f"{tag}_{arm}")
    finally:
        grader.close()
        if executor is not None:
            executor.close()
    return res


def run_sft(seed: int, out: str, data: dict, model_dir: str, sft_overrides=(), rl_overrides=()) -> dict:
    """The seed's SFT, then the SFT model's accuracy with and without the tool."""
    out_p, t0 = Path(out), time.time()
    cfg = load_config(SFTConfig, SFT_RECIPE, [
        f"model.pretrain={model_dir}", f"data.train={data['sft']}", f"logging.output_dir={out_p / 'sft'}",
        f"train.seed={seed}", *sft_overrides])
    sft = SFTTrainer(cfg)
    sft_dir = sft.train()
    sft_s = time.time() - t0
    rl_cfg = rl_config(out_p, "tool", seed, sft_dir, data, rl_overrides)
    res = {"seed": seed, "sft_dir": str(sft_dir), "sft_steps": sft.step, "sft_s": round(sft_s, 1),
           "before": _evals(sft.model, sft.tokenizer, data, ARMS, rl_cfg, out_p / "eval", "sft")}
    res["wall_s"] = round(time.time() - t0, 1)
    logger.info("seed %d after SFT: %s", seed, res["before"])
    return res


def run_grpo(arm: str, seed: int, out: str, data: dict, sft_dir: str, rl_overrides=()) -> dict:
    """GRPO of one arm from the seed's SFT model, then its held-out accuracy."""
    out_p, t0 = Path(out), time.time()
    cfg = rl_config(out_p, arm, seed, Path(sft_dir), data, rl_overrides)
    loop = build_run(cfg)
    try:
        history = loop.run()
    finally:
        loop.reward.close()
        if loop.tracker:
            loop.tracker.close()
        loop.rollout.close()
    grpo_s = time.time() - t0
    after = _evals(loop.policy.model, loop.tokenizer, data, ARMS if arm == "tool" else [arm],
                   rl_config(out_p, "tool", seed, Path(sft_dir), data, rl_overrides), out_p / "eval", f"grpo_{arm}")
    keys = ("reward/accuracy", "tools/calls_per_sample", "tools/error_rate", "tools/wait_s", "time/step",
            "time/generate")
    res = {"arm": arm, "seed": seed, "after": after[arm], "grpo_steps": len(history), "grpo_s": round(grpo_s, 1),
           "curve": [{k: m[k] for k in keys if k in m} for m in history], "wall_s": round(time.time() - t0, 1)}
    if arm == "tool":
        res["after_tool_off"] = after["no_tool"]
    logger.info("%s seed %d after GRPO: %s", arm, seed, res["after"])
    return res


def run(out: Path, seeds: list[int], *, n_sft: int, n_rl: int, n_heldout: int, tool_fraction: float = 0.3,
        sft_overrides=(), rl_overrides=(), jobs: int = 2) -> list[dict]:
    """Every seed's SFT, then its two GRPO arms, ``jobs`` at a time (spawned processes, one torch thread each)."""
    prepared = {}
    for seed in seeds:
        d = out / f"seed{seed}"
        prepared[seed] = ({k: str(v) for k, v in write_data(d, seed, n_sft, n_rl, n_heldout, tool_fraction).items()},
                          str(build_tiny_model(d, seed)))
    results: dict[int, dict] = {s: {"seed": s} for s in seeds}
    t0 = time.time()
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_child_init) as pool:
        pending = {pool.submit(run_sft, s, str(out / f"seed{s}"), *prepared[s], list(sft_overrides),
                               list(rl_overrides)): ("sft", s) for s in seeds}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                kind, seed = pending.pop(fut)
                res = fut.result()  # a failed job ends the demo with its error
                if kind == "sft":
                    results[seed]["sft"] = res
                    for arm in ARMS:
                        pending[pool.submit(run_grpo, arm, seed, str(out / f"seed{seed}"), prepared[seed][0],
                                            res["sft_dir"], list(rl_overrides))] = (arm, seed)
                else:
                    results[seed][kind] = res
                    results[seed]["finished_s"] = round(time.time() - t0, 1)
    return [results[s] for s in seeds]


def format_table(rows: list[dict]) -> str:
    def cell(r):
        return f"{100 * r['accuracy']:.1f} % ({r.get('tool_calls_per_sample', 0):.2f})"

    lines = ["Held-out accuracy, greedy (tool calls per sample with the executor in brackets)", "",
             "| seed | SFT, no executor | SFT, with executor | GRPO without executor | GRPO with executor | "
             "GRPO with executor, evaluated without |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        b, nt, t = r["sft"]["before"], r["no_tool"], r["tool"]
        lines.append(f"| {r['seed']} | {100 * b['no_tool']['accuracy']:.1f} % | {cell(b['tool'])} | "
                     f"{100 * nt['after']['accuracy']:.1f} % | {cell(t['after'])} | "
                     f"{100 * t['after_tool_off']['accuracy']:.1f} % |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.tool_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--output-dir", default="runs/tool_demo")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sft-demos", type=int, default=4000, help="the teacher's SFT demonstrations")
    p.add_argument("--tool-fraction", type=float, default=0.3, help="share of the demonstrations that use the tool")
    p.add_argument("--rl-prompts", type=int, default=2000)
    p.add_argument("--heldout", type=int, default=200)
    p.add_argument("--jobs", type=int, default=2, help="processes at once (one core each)")
    p.add_argument("--sft", action="append", default=[], metavar="KEY=VALUE", help="override of tool_demo_sft.yaml")
    p.add_argument("--rl", action="append", default=[], metavar="KEY=VALUE", help="override of tool_demo_grpo.yaml")
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _child_init()
    out, t0 = Path(a.output_dir), time.time()
    rows = run(out, [int(s) for s in a.seeds.split(",")], n_sft=a.sft_demos, n_rl=a.rl_prompts,
               n_heldout=a.heldout, tool_fraction=a.tool_fraction, sft_overrides=a.sft, rl_overrides=a.rl,
               jobs=a.jobs)
    table = format_table(rows)
    summary = {"rows": rows, "table": table, "wall_s": round(time.time() - t0, 1),
               "command": "python -m trainer.tool_demo " + " ".join(argv if argv is not None else sys.argv[1:])}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "table.md").write_text(table + "\n")
    print("\n" + table + f"\n\nwall {summary['wall_s'] / 60:.1f} min (2 jobs at a time); {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
