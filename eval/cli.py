"""``rl-eval``: evaluate math reasoning models the way the seeds report them.

    rl-eval run --model PATH --benchmarks math500,aime24 --n 8 --k 1,8 [--backend vllm|hf] [--template qwen_boxed]
    rl-eval run --model PATH --benchmarks math500 --tools python      the model runs Python while it reasons
    rl-eval score --samples FILE.jsonl [--k 1,4]          grade + summarise generations made elsewhere
    rl-eval compare RUN_DIR RUN_DIR ...                   side-by-side tables
    rl-eval diff BEFORE_DIR AFTER_DIR                     95 % intervals and the paired change (same problems)
    rl-eval curve --run TRAIN_OUTPUT_DIR --benchmarks ... evaluate every checkpoint, plot metric vs step
    rl-eval plot EVAL_DIR ... --metric pass@1             the PNG from existing eval runs
    rl-eval list                                          benchmarks and whether their files are present
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from mathrl_core.rollout.registry import ROLLOUT_BACKENDS
from mathrl_core.tools.config import ToolConfig
from mathrl_core.tools.formats import TOOL_FORMATS

log = logging.getLogger("rl-eval")


def _ks(s: Optional[str]) -> Optional[list]:
    if not s:
        return None
    try:
        ks = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k wants comma-separated integers, got {s!r}")
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"--k values must be >= 1, got {s!r}")
    return ks


def _grader_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("grading (reward_service.grading)")
    g.add_argument("--grader", choices=["pool", "inline"], default="pool",
                   help="pool: killable worker processes with a per-item time limit (default); inline: in this process")
    g.add_argument("--grader-url", default=None, help="grade through the HTTP reward service at this URL instead")
    g.add_argument("--grader-token", default=os.environ.get("REWARD_SERVICE_TOKEN"), help="bearer token for --grader-url")
    g.add_argument("--grader-workers", type=int, default=2)
    g.add_argument("--grader-timeout", type=float, default=2.0, help="seconds per item (pool)")
    g.add_argument("--last-number-fallback", action="store_true",
                   help="accept the last number of an answerless completion (GSM8K style); off by default")
    g.add_argument("--allow-grader-errors", action="store_true",
                   help="keep going when the grading function raises on an item (counted not correct and reported "
                        "as grader_errors) instead of stopping; generations are saved before grading either way")


def _gen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmarks", default="all", help="comma-separated names or .jsonl paths; 'all' = the seeds' set")
    p.add_argument("--limit", type=int, default=None, help="first N problems of each benchmark")
    p.add_argument("--data-dir", default=None, help="folder of the benchmark files (default $MATHRL_DATA_DIR or ../shared/data)")
    p.add_argument("--source", choices=["local", "hub", "auto"], default="local")
    p.add_argument("--n", type=int, default=1, help="samples per problem")
    p.add_argument("--k", type=_ks, default=None, help="k for pass@k and maj@k, e.g. 1,8 (default 1,2,4..n)")
    p.add_argument("--temperature", type=float, default=None,
                   help="0 = greedy; default 0 for n=1, else 0.6 (with top-p 0.95)")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=-1)
    p.add_argument("--max-tokens", type=int, default=2048, help="max new tokens per completion")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--backend", choices=sorted(ROLLOUT_BACKENDS), default="vllm",
                   help="rollout backend (mathrl_core.rollout.registry): vllm or hf generate")
    p.add_argument("--template", default="qwen_boxed", help="trainer prompt template ('none' = raw question)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer path/id when the model directory has none (curve: default from the run's config)")
    p.add_argument("--tensor-parallel-size", "--tp", type=int, default=1)
    p.add_argument("--dtype", default="auto", help="vLLM dtype; the HF backend maps auto to float32 on CPU")
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="vLLM GPU memory fraction (default 0.8; ignored on CPU, see --kv-cache-memory-bytes)")
    p.add_argument("--kv-cache-memory-bytes", type=int, default=None,
                   help="vLLM KV-cache size in bytes (default on CPU: 1 GiB; on GPU: from the memory fraction)")
    p.add_argument("--enforce-eager", action="store_true",
                   help="vLLM without graph capture / torch.compile (much faster engine start on CPU)")
    p.add_argument("--hf-batch-size", type=int, default=64, help="HF generate micro-batch (sequences)")
    p.add_argument("--no-progress", action="store_true")
    _tool_args(p)
    _grader_args(p)


def _tool_args(p: argparse.ArgumentParser) -> None:
    t = p.add_argument_group("tools (mathrl_core.tools: the model runs Python in a sandbox during generation)")
    t.add_argument("--tools", choices=["python"], default=None,
                   help="tool-integrated reasoning: pause at a closed code block, run it, append its output")
    t.add_argument("--tool-format", choices=sorted(TOOL_FORMATS), default="torl")
    t.add_argument("--max-tool-calls", type=int, default=4, help="per sample")
    t.add_argument("--tool-timeout", type=float, default=5.0, help="wall seconds per snippet")
    t.add_argument("--tool-workers", type=int, default=4, help="snippets run at once")
    t.add_argument("--tool-memory-mb", type=int, default=1024)
    t.add_argument("--sandbox-url", default=None, help="a code-sandbox service instead of a local sandbox pool")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rl-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="generate, grade and summarise one model")
    r.add_argument("--model", required=True, help="model directory, hub id or GGUF model (.gguf file)")
    r.add_argument("--out", default=None, help="run directory (default eval_results/<model name>)")
    r.add_argument("--name", default=None, help="row name in tables (default: the run directory name)")
    r.add_argument("--step", type=int, default=None, help="training step of this model (for curves)")
    _gen_args(r)

    s = sub.add_parser("score", help="grade and summarise a samples file (no model)")
    s.add_argument("--samples", required=True, nargs="+", help="JSONL: benchmark, id, gold, completions")
    s.add_argument("--k", type=_ks, default=None, help="k for pass@k and maj@k (default 1,2,4..max n)")
    s.add_argument("--tokenizer", default=None, help="count CoT length in this tokenizer's tokens (else characters)")
    s.add_argument("--out", default=None, help="run directory (default <samples stem>_eval next to the file)")
    s.add_argument("--name", default=None)
    s.add_argument("--no-progress", action="store_true")
    _grader_args(s)

    c = sub.add_parser("compare", help="several runs side by side")
    c.add_argument("runs", nargs="+", help="run directories or summary.json files")
    c.add_argument("--metrics", default=None, help="e.g. pass@1,maj@8 (default: all)")
    c.add_argument("--out", default=None, help="also write the markdown here")

    cu = sub.add_parser("curve", help="evaluate a training run's checkpoints and plot a metric against step")
    cu.add_argument("--run", default=None, help="trainer output dir (checkpoints in <run>/checkpoints/step_*)")
    cu.add_argument("--checkpoints", nargs="*", default=[], help="checkpoint directories instead of --run")
    cu.add_argument("--base", default=None, help="also evaluate this model as step 0")
    cu.add_argument("--metric", default="pass@1")
    cu.add_argument("--out", default=None, help="output dir (default <run>/eval_curve)")
    cu.add_argument("--overwrite", action="store_true", help="re-evaluate steps that already have a summary")
    _gen_args(cu)

    d = sub.add_parser("diff", help="two runs on the same problems: 95 %% intervals and the paired change")
    d.add_argument("before", help="run directory (or samples.jsonl), e.g. the base model")
    d.add_argument("after", help="run directory (or samples.jsonl), e.g. the RL checkpoint")
    d.add_argument("--names", default="before,after", help="column names, comma-separated")
    d.add_argument("--json", default=None, help="also write the numbers here")

    pl = sub.add_parser("plot", help="PNG of a metric vs training step from existing eval runs")
    pl.add_argument("runs", nargs="+")
    pl.add_argument("--metric", default="pass@1")
    pl.add_argument("--out", default="curve.png")

    sub.add_parser("list", help="list benchmarks")
    return ap


# --------------------------------------------------------------------------------------------- commands


def _backend(a):
    from eval.grading_backend import make_backend

    return make_backend(a.grader, url=a.grader_url, workers=a.grader_workers, timeout=a.grader_timeout,
                        token=a.grader_token, last_number_fallback=a.last_number_fallback)


def _spec(a):
    from eval.generate import check_sampling
    from mathrl_core.sampling import SamplingConfig

    temp = a.temperature if a.temperature is not None else (0.0 if a.n == 1 else 0.6)
    top_p = a.top_p if a.top_p is not None else (1.0 if temp == 0 else 0.95)
    return check_sampling(SamplingConfig(n=a.n, temperature=temp, top_p=top_p, top_k=a.top_k,
                                         max_new_tokens=a.max_tokens, seed=a.seed, stop=list(a.stop)))


def _tools(a):
    if not getattr(a, "tools", None):
        return None
    return ToolConfig(tool=a.tools, format=a.tool_format, max_tool_calls=a.max_tool_calls, timeout_s=a.tool_timeout,
                      workers=a.tool_workers, memory_mb=a.tool_memory_mb, url=a.sandbox_url)


def _generator(a, model: str, tokenizer: Optional[str] = None):
    from eval.generate import make_generator

    if a.backend == "hf":
        return make_generator("hf", model, tokenizer, dtype=a.dtype, micro_batch_size=a.hf_batch_size,
                              tools=_tools(a))
    return make_generator(a.backend, model, tokenizer, tensor_parallel_size=a.tensor_parallel_size, dtype=a.dtype,
                          seed=a.seed, max_model_len=a.max_model_len,
                          gpu_memory_utilization=a.gpu_memory_utilization, enforce_eager=a.enforce_eager,
                          kv_cache_memory_bytes=a.kv_cache_memory_bytes, tools=_tools(a))


def _eval_model(a, model: str, out_dir: Path, name: Optional[str], step: Optional[int], backend,
                tokenizer: Optional[str] = None) -> dict:
    from eval.benchmarks import load_benchmarks
    from eval.harness import run_eval

    from eval.harness import check_ks, default_ks

    problems = load_benchmarks(a.benchmarks, data_dir=a.data_dir, source=a.source, limit=a.limit)
    spec = _spec(a)
    check_ks(a.k or default_ks(spec.n), spec.n)  # before the (slow) model load
    gen = _generator(a, model, tokenizer or getattr(a, "tokenizer", None))
    try:
        info = {"model": model, "name": name or out_dir.name, "limit": a.limit}
        if step is not None:
            info["step"] = step
        res = run_eval(gen, problems, spec, backend, ks=a.k, template=a.template, progress=not a.no_progress,
                       out_dir=out_dir, run_info=info, on_error="return" if a.allow_grader_errors else "raise")
    finally:
        gen.close()
    return res.summary


def cmd_run(a) -> int:
    from eval.report import markdown_tables

    out = Path(a.out) if a.out else Path("eval_results") / Path(a.model.rstrip("/")).name
    backend = _backend(a)
    try:
        summary = _eval_model(a, a.model, out, a.name, a.step, backend)
    finally:
        backend.close()
    print(markdown_tables([(summary["name"], summary)]))
    print(f"wrote {out}/samples.jsonl, summary.json, table.md", file=sys.stderr)
    return 0


def cmd_score(a) -> int:
    from eval.harness import default_ks
    from eval.report import markdown_tables, write_run
    from eval.samples_file import read_samples_file
    from eval.scoring import score_samples

    samples = [ps for f in a.samples for ps in read_samples_file(f)]
    nmax = max(len(s.completions) for s in samples)
    ks = a.k or default_ks(nmax)
    count = None
    if a.tokenizer:
        from mathrl_core.models.loading import load_tokenizer  # torch/transformers: only when asked

        tok = load_tokenizer(a.tokenizer)
        count = lambda t: len(tok(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    backend = _backend(a)
    try:
        res = score_samples(samples, backend, ks, count_tokens=count, progress=not a.no_progress,
                            on_error="return" if a.allow_grader_errors else "raise")
    finally:
        backend.close()
    first = Path(a.samples[0])
    out = Path(a.out) if a.out else first.with_name(first.stem + "_eval")
    res.summary.update({"samples_files": [str(f) for f in a.samples], "name": a.name or out.name})
    for b, m in res.summary["benchmarks"].items():
        short = {k: v for k, v in m.get("counted", {}).items() if v < m["n_problems"]}
        if short:
            log.warning("%s: some problems have fewer than k samples and are left out of: %s", b, short)
    write_run(out, res.records, res.summary)
    print(markdown_tables([(res.summary["name"], res.summary)]))
    print(f"wrote {out}/samples.jsonl, summary.json, table.md", file=sys.stderr)
    return 0


def cmd_compare(a) -> int:
    from eval.report import compare

    md = compare(a.runs, a.metrics.split(",") if a.metrics else None)
    if a.out:
        Path(a.out).write_text(md, encoding="utf-8")
    print(md)
    return 0


def cmd_curve(a) -> int:
    from eval.checkpoints import find_checkpoints, resolve_tokenizer
    from eval.plot import plot_curve
    from eval.report import compare

    ckpts = [(step, model, resolve_tokenizer(model, a.run, a.tokenizer))
             for step, model in find_checkpoints(a.run, tuple(a.checkpoints))]
    if a.base:  # the model training started from, as step 0
        ckpts = [(0, a.base, a.tokenizer)] + [c for c in ckpts if c[0] != 0]
    out = Path(a.out) if a.out else Path(a.run or ".") / "eval_curve"
    backend = _backend(a)
    dirs = []
    try:
        for step, model, tok in ckpts:
            d = out / f"step_{step:06d}"
            dirs.append(d)
            if (d / "summary.json").is_file() and not a.overwrite:
                log.info("step %d: already evaluated (%s), skipping", step, d)
                continue
            log.info("step %d: evaluating %s", step, model)
            _eval_model(a, model, d, f"step {step}", step, backend, tokenizer=tok)
    finally:
        backend.close()
    png = plot_curve(dirs, a.metric, out / f"curve_{a.metric.replace('@', '_at_')}.png")
    md = compare(dirs)
    (out / "curve.md").write_text(md, encoding="utf-8")
    print(md)
    print(f"wrote {png} and {out / 'curve.md'}", file=sys.stderr)
    return 0


def cmd_diff(a) -> int:
    import json

    from eval.intervals import diff_report, markdown, to_json

    names = tuple(x.strip() for x in a.names.split(","))
    if len(names) != 2:
        raise ValueError(f"--names wants two comma-separated names, got {a.names!r}")
    report = diff_report(a.before, a.after, names)
    print(markdown(report))
    if a.json:
        Path(a.json).write_text(json.dumps(to_json(report), indent=2))
    return 0


def cmd_plot(a) -> int:
    from eval.plot import plot_curve

    print(plot_curve(a.runs, a.metric, a.out))
    return 0


def cmd_list(a) -> int:
    from eval.benchmarks import BENCHMARKS, DEFAULT_BENCHMARKS
    from mathrl_core.data_files import data_dir

    d = data_dir()
    print(f"data dir: {d}")
    for name, spec in BENCHMARKS.items():
        have = "ok" if (d / spec.file).is_file() else "MISSING"
        star = "*" if name in DEFAULT_BENCHMARKS else " "
        print(f"{star} {name:18s} {spec.file:26s} {have:8s} hub: {spec.hub_id}  {spec.description}")
    print("* = in 'all'")
    return 0


COMMANDS = {"run": cmd_run, "score": cmd_score, "compare": cmd_compare, "curve": cmd_curve, "diff": cmd_diff,
            "plot": cmd_plot, "list": cmd_list}


def main(argv: Optional[list] = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose or a.cmd in ("run", "curve") else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from eval.benchmarks import UnknownBenchmarkError
    from eval.grading_backend import GradingError
    from eval.samples_file import SamplesFileError

    try:
        return COMMANDS[a.cmd](a)
    except (UnknownBenchmarkError, OSError, SamplesFileError, GradingError, ValueError) as e:
        print(f"rl-eval {a.cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
