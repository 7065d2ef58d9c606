"""Grade generated samples, cluster their answers and summarise: completions in, records + summary out.

No model here: the input is problems with their completions (from ``eval.generate``, the trainer's
rollout, or a samples file made elsewhere) and a grading backend (``eval.grading_backend``).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from eval.benchmarks import Problem
from eval.grading_backend import answers_equivalent, grade_all
from eval.metrics import ProblemOutcome, average_metrics, benchmark_metrics, cluster_answers_many

NO_ANSWER = "no_answer"


@dataclass
class Completion:
    """One generated sample."""

    text: str
    num_tokens: Optional[int] = None       # completion length in tokens, when the generator knows it
    finish_reason: Optional[str] = None    # "stop" | "length" | ...


@dataclass
class ProblemSamples:
    """A problem and its samples, in generation order."""

    problem: Problem
    completions: list
    prompt: Optional[str] = None


def as_completion(x: Any) -> Completion:
    """Accept a str, a dict with text/completion (+ num_tokens/finish_reason), or an object with ``.text``."""
    if isinstance(x, Completion):
        return x
    if isinstance(x, str):
        return Completion(x)
    if isinstance(x, dict):
        text = next((x[k] for k in ("text", "completion", "response", "output") if k in x), None)
        if not isinstance(text, str):
            raise ValueError(f"completion dict without a text field: {sorted(x)}")
        ntok = x.get("num_tokens", x.get("n_tokens"))
        return Completion(text, int(ntok) if ntok is not None else None, x.get("finish_reason"))
    text = getattr(x, "text", None)
    if isinstance(text, str):
        ids = getattr(x, "token_ids", None)
        ntok = getattr(x, "num_tokens", None)
        if ntok is None and ids is not None:
            ntok = len(ids)
        return Completion(text, ntok, getattr(x, "finish_reason", None))
    raise TypeError(f"cannot read a completion from {type(x).__name__}")


@dataclass
class ScoreResult:
    """Per-sample records (JSONL-ready dicts) and the summary (per-benchmark metrics and their average)."""

    records: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def score_samples(samples: Sequence[ProblemSamples], backend, ks: Sequence[int] = (1,), *,
                  count_tokens: Optional[Callable[[str], int]] = None, progress: bool = False,
                  include_prompt: bool = True) -> ScoreResult:
    """Grade every completion against its problem's gold, cluster answers for maj@k, compute metrics.

    ``ks``: the k of pass@k and maj@k. Lengths are in tokens when every completion has a token count
    (from the generator, or ``count_tokens(text)``), else in characters (``summary["len_unit"]``).
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"k must be >= 1, got {ks}")
    samples = [ProblemSamples(s.problem, [as_completion(c) for c in s.completions], s.prompt) for s in samples]
    items = [(c.text, s.problem.gold) for s in samples for c in s.completions]
    grades = grade_all(backend, items, progress=progress, desc="grading")

    # Per problem: the graded samples, then answers of the first max(k) samples clustered by equivalence.
    per_problem, pos = [], 0
    for s in samples:
        per_problem.append(grades[pos:pos + len(s.completions)])
        pos += len(s.completions)
    kmax = ks[-1]
    answer_lists = [[_vote_answer(g) for g in gs[:kmax]] for gs in per_problem]
    clusters = cluster_answers_many(
        answer_lists, lambda pairs: answers_equivalent(backend, pairs, progress=progress and len(pairs) > 2000))

    lengths, len_unit = _lengths(samples, count_tokens)
    outcomes: dict[str, list[ProblemOutcome]] = defaultdict(list)
    records: list[dict] = []
    for s, gs, cl, ls in zip(samples, per_problem, clusters, lengths):
        outcomes[s.problem.benchmark].append(ProblemOutcome(
            correct=[g.verdict == "correct" for g in gs], no_answer=[g.verdict == NO_ANSWER for g in gs],
            clusters=cl, lengths=ls))
        for j, (c, g) in enumerate(zip(s.completions, gs)):
            rec = {"benchmark": s.problem.benchmark, "id": s.problem.id, "sample": j, "gold": s.problem.gold,
                   "answer": g.answer, "verdict": g.verdict, "reason": g.reason, "method": g.method,
                   "cluster": cl[j] if j < len(cl) else None, "len": ls[j], "finish_reason": c.finish_reason,
                   "completion": c.text}
            if include_prompt and s.prompt is not None:
                rec["prompt"] = s.prompt
            records.append(rec)
    per_bench = {b: benchmark_metrics(o, ks) for b, o in outcomes.items()}
    summary = {"ks": ks, "len_unit": len_unit, "benchmarks": per_bench, "average": average_metrics(per_bench),
               "grader": getattr(backend, "name", type(backend).__name__)}
    return ScoreResult(records, summary)


def _vote_answer(g) -> Optional[str]:
    """The answer a sample votes with: its extracted answer, or None (no vote) without one."""
    if g.verdict == NO_ANSWER or g.answer is None or not str(g.answer).strip():
        return None
    return str(g.answer)


def _lengths(samples: Sequence[ProblemSamples], count_tokens) -> tuple[list, str]:
    """Token counts when available for every completion, else character counts (and the unit used)."""
    toks = [[c.num_tokens if c.num_tokens is not None else (count_tokens(c.text) if count_tokens else None)
             for c in s.completions] for s in samples]
    if all(t is not None for ts in toks for t in ts):
        return toks, "tokens"
    return [[len(c.text) for c in s.completions] for s in samples], "chars"
