"""The eval pipeline: problems -> prompts -> generations -> grades -> metrics (-> files).

Two entry points:

- :func:`run_eval` — with a generator object (``eval.generate``); used by ``rl-eval run``.
- :func:`evaluate` — for the trainer's eval hook: any ``generate_fn(prompts, n) -> [[completion, ...], ...]``
  (the in-memory policy through its rollout backend), returns flat metrics to log.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from eval.benchmarks import Problem, load_benchmarks
from eval.generate import build_prompts, check_sampling, problem_seed
from eval.grading_backend import make_backend
from eval.report import flat_metrics, write_run
from eval.scoring import ProblemSamples, ScoreResult, score_samples
from mathrl_core.completion import as_completion
from mathrl_core.sampling import SamplingConfig
from mathrl_core.tools.metrics import tool_metrics

log = logging.getLogger(__name__)


def default_ks(n: int) -> list[int]:
    """k values reported by default: 1 and the powers of two up to n, and n itself (n=8 -> 1, 2, 4, 8)."""
    ks, k = [1], 2
    while k <= n:
        ks.append(k)
        k *= 2
    if n not in ks:
        ks.append(n)
    return ks


def check_ks(ks: Sequence[int], n: int) -> list[int]:
    """Sorted distinct k values, each in 1..n (a clear error otherwise)."""
    ks = sorted({int(k) for k in ks})
    bad = [k for k in ks if k < 1 or k > n]
    if bad:
        raise ValueError(f"k must be between 1 and n={n}; got {bad} (raise --n or drop these k)")
    return ks


def run_eval(generator, problems: dict[str, list[Problem]], spec: SamplingConfig, backend, *,
             ks: Optional[Sequence[int]] = None, template: Optional[str] = "qwen_boxed", progress: bool = True,
             out_dir: Union[str, Path, None] = None, run_info: Optional[dict] = None,
             on_error: str = "raise") -> ScoreResult:
    """Generate ``spec.n`` samples per problem with ``generator``, grade with ``backend``, summarise, and
    write the run files into ``out_dir`` when given (``generations.jsonl`` first, before grading, in the
    samples-file format of ``rl-eval score``; then samples.jsonl, summary.json, table.md)."""
    check_sampling(spec)
    ks = check_ks(ks or default_ks(spec.n), spec.n)
    flat = [p for ps in problems.values() for p in ps]
    prompts = build_prompts([p.question for p in flat], generator.tokenizer, template)
    seeds = [problem_seed(spec.seed, p.benchmark, p.id) for p in flat]
    t0 = time.perf_counter()
    outs = _generate_in_chunks(generator, prompts, spec, seeds, progress)
    gen_s = time.perf_counter() - t0
    samples = [ProblemSamples(p, c, pr) for p, c, pr in zip(flat, outs, prompts)]
    if out_dir is not None:  # saved before grading: a grading failure loses no generation
        gen_file = write_generations(Path(out_dir) / "generations.jsonl", samples)
        log.info("generations saved to %s (re-grade with: rl-eval score --samples %s)", gen_file, gen_file)
    t1 = time.perf_counter()
    res = score_samples(samples, backend, ks, count_tokens=None, progress=progress, on_error=on_error)
    infos = [c.info for s in samples for c in s.completions]
    if any(i is not None for i in infos):  # tools in the loop (--tools): per-sample calls, and the step's summary
        for rec, info in zip(res.records, infos):
            rec["tools"] = info
        res.summary["tools"] = tool_metrics([i or {} for i in infos], [r["verdict"] for r in res.records])
    res.summary.update({
        "sampling": {"n": spec.n, "temperature": spec.temperature, "top_p": spec.top_p, "top_k": spec.top_k,
                     "max_tokens": spec.max_new_tokens, "seed": spec.seed, "greedy": spec.greedy},
        "template": template, "generator": getattr(generator, "name", type(generator).__name__),
        "timing_s": {"generate": round(gen_s, 3), "grade": round(time.perf_counter() - t1, 3)},
        **(run_info or {})})
    if out_dir is not None:
        write_run(out_dir, res.records, res.summary)
    return res


def write_generations(path: Path, samples: Sequence[ProblemSamples]) -> Path:
    """The raw generations as a samples file (benchmark, id, gold, prompt, completions with token counts)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({"benchmark": s.problem.benchmark, "id": s.problem.id, "gold": s.problem.gold,
                                "prompt": s.prompt, "completions": [
                                    {"text": c.text, "num_tokens": c.num_tokens, "finish_reason": c.finish_reason}
                                    for c in s.completions]}, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def _generate_in_chunks(generator, prompts, spec, seeds, progress) -> list:
    """Prompts in the chunks the generator asks for (``chunk_prompts``; fixed, independent of the progress bar, so
    results are the same with or without it) with a bar over problems; a generator that schedules everything
    itself (vLLM: ``chunk_prompts`` is None) gets one call and shows its own bar."""
    chunk = generator.chunk_prompts(spec.n)
    if chunk is None:
        return generator.generate(prompts, spec, seeds=seeds, progress=progress)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(prompts), desc="generating", unit="problem", dynamic_ncols=True)
    outs: list = []
    try:
        for i in range(0, len(prompts), chunk):
            outs.extend(generator.generate(prompts[i:i + chunk], spec, seeds=seeds[i:i + chunk]))
            if bar:
                bar.update(len(prompts[i:i + chunk]))
    finally:
        if bar:
            bar.close()
    return outs


def evaluate(generate_fn: Callable[[list, int], list], benchmarks: Union[str, Sequence[str]], *, n: int = 1,
             ks: Optional[Sequence[int]] = None, limit: Optional[int] = None, data_dir: Optional[str] = None,
             tokenizer: Any = None, template: Optional[str] = "qwen_boxed",
             prompt_fn: Optional[Callable[[str], str]] = None, grader=None,
             grader_workers: int = 2, grader_timeout: float = 2.0, out_dir: Union[str, Path, None] = None,
             step: Optional[int] = None, prefix: str = "eval", progress: bool = False) -> dict:
    """Evaluate an in-memory model on ``benchmarks`` and return flat metrics for a logger.

    ``generate_fn(prompts, n)`` returns, per prompt, ``n`` completions (str, dicts with ``text`` and
    optional ``num_tokens``, or objects with ``.text`` / ``.token_ids``). Prompts are built with the
    trainer's ``template`` and ``tokenizer`` (or ``prompt_fn(question)``; raw questions when neither).
    ``grader``: a backend from ``eval.grading_backend`` (e.g. ``make_backend(url=, token=, scheme=)`` for the HTTP
    reward service); else a worker pool is started and closed. ``out_dir``: also write samples/summary/table there.
    Returns ``{"eval/<benchmark>/<metric>": value, ..., "eval/avg/<metric>": value}``.
    """
    problems = load_benchmarks(benchmarks, data_dir=data_dir, limit=limit)
    flat = [p for ps in problems.values() for p in ps]
    if prompt_fn is not None:
        prompts = [prompt_fn(p.question) for p in flat]
    elif tokenizer is not None:
        prompts = build_prompts([p.question for p in flat], tokenizer, template)
    else:
        prompts = [p.question for p in flat]
    ks = check_ks(ks or default_ks(n), n)
    outs = generate_fn(prompts, n)
    if len(outs) != len(prompts):
        raise ValueError(f"generate_fn returned {len(outs)} results for {len(prompts)} prompts")
    samples = []
    for p, pr, o in zip(flat, prompts, outs):
        comps = [as_completion(c) for c in o]
        if len(comps) != n:
            raise ValueError(f"generate_fn returned {len(comps)} completions for {p.benchmark}/{p.id}, expected {n}")
        samples.append(ProblemSamples(p, comps, pr))
    if out_dir is not None:
        write_generations(Path(out_dir) / "generations.jsonl", samples)
    own = grader is None
    backend = grader or make_backend("pool", workers=grader_workers, timeout=grader_timeout)
    try:
        count = (lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"])) if tokenizer is not None else None
        res = score_samples(samples, backend, ks, count_tokens=count, progress=progress)
    finally:
        if own:
            backend.close()
    res.summary.update({"sampling": {"n": n}, "template": template if prompt_fn is None and tokenizer is not None
                        else None, "generator": getattr(generate_fn, "__name__", "generate_fn")})
    if step is not None:
        res.summary["step"] = step
    if out_dir is not None:
        write_run(out_dir, res.records, res.summary)
    return flat_metrics(res.summary, prefix)
