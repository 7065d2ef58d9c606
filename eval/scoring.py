"""Grade generated samples, cluster their answers and summarise: completions in, records + summary out.

No model here: the input is problems with their completions (from ``eval.generate``, the trainer's
rollout, or a samples file made elsewhere) and a grading backend (``eval.grading_backend``).
"""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from eval.benchmarks import Problem
from mathrl_core.completion import as_completion
from eval.grading_backend import CORRECT, ERROR, TIMEOUT_REASON, equivalence_items, grade_all
from eval.metrics import ProblemOutcome, average_metrics, benchmark_metrics, cluster_answers_many

NO_ANSWER = "no_answer"
log = logging.getLogger(__name__)


@dataclass
class ProblemSamples:
    """A problem and its samples, in generation order."""

    problem: Problem
    completions: list
    prompt: Optional[str] = None


@dataclass
class ScoreResult:
    """Per-sample records (JSONL-ready dicts) and the summary (per-benchmark metrics and their average)."""

    records: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def score_samples(samples: Sequence[ProblemSamples], backend, ks: Sequence[int] = (1,), *,
                  count_tokens: Optional[Callable[[str], int]] = None, progress: bool = False,
                  include_prompt: bool = True, on_error: str = "raise") -> ScoreResult:
    """Grade every completion against its problem's gold, cluster answers for maj@k, compute metrics.

    ``ks``: the k of pass@k and maj@k. Lengths are in tokens when every completion has a token count
    (from the generator, or ``count_tokens(text)``), else in characters (``summary["len_unit"]``).
    ``on_error``: "raise" (default) stops with :class:`~eval.grading_backend.GradingError` when the grading
    function fails on an item; "return" keeps such items with verdict "error" (counted as not correct and
    reported per benchmark as ``grader_errors``). Timeouts are graded "wrong" by the grader and reported
    as ``timeouts``.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"k must be >= 1, got {ks}")
    samples = [ProblemSamples(s.problem, [as_completion(c) for c in s.completions], s.prompt) for s in samples]
    items = [(c.text, s.problem.gold) for s in samples for c in s.completions]
    grades = grade_all(backend, items, progress=progress, desc="grading", on_error=on_error)

    # Per problem: the graded samples, then answers of the first max(k) samples clustered by equivalence.
    per_problem, pos = [], 0
    for s in samples:
        per_problem.append(grades[pos:pos + len(s.completions)])
        pos += len(s.completions)
    kmax = ks[-1]
    answer_lists = [[_vote_answer(g) for g in gs[:kmax]] for gs in per_problem]
    eq_errors = [0]

    def equivalent_many(pairs):
        # Two plain integers are equal exactly when their values are (the grader compares integers exactly
        # too), so those pairs are settled here; everything else goes to the grader.
        out = [_int_equal(a, b) for a, b in pairs]
        ask = [i for i, v in enumerate(out) if v is None]
        res = grade_all(backend, equivalence_items([pairs[i] for i in ask]), on_error="return",
                        progress=progress and len(ask) > 2000, desc="clustering answers")
        eq_errors[0] += sum(g.verdict == ERROR for g in res)
        for i, g in zip(ask, res):
            out[i] = g.verdict == CORRECT
        return out

    clusters = cluster_answers_many(answer_lists, equivalent_many)

    lengths, len_unit = _lengths(samples, count_tokens)
    outcomes: dict[str, list[ProblemOutcome]] = defaultdict(list)
    issues: dict[str, dict] = defaultdict(lambda: {"timeouts": 0, "grader_errors": 0})
    records: list[dict] = []
    for s, gs, cl, ls in zip(samples, per_problem, clusters, lengths):
        b = s.problem.benchmark
        outcomes[b].append(ProblemOutcome(
            correct=[g.verdict == CORRECT for g in gs], no_answer=[g.verdict == NO_ANSWER for g in gs],
            clusters=cl, lengths=ls))
        issues[b]["timeouts"] += sum(g.reason == TIMEOUT_REASON for g in gs)
        issues[b]["grader_errors"] += sum(g.verdict == ERROR for g in gs)
        for j, (c, g) in enumerate(zip(s.completions, gs)):
            rec = {"benchmark": b, "id": s.problem.id, "sample": j, "gold": s.problem.gold,
                   "answer": g.answer, "verdict": g.verdict, "reason": g.reason, "method": g.method,
                   "cluster": cl[j] if j < len(cl) else None, "len": ls[j], "finish_reason": c.finish_reason,
                   "completion": c.text}
            if include_prompt and s.prompt is not None:
                rec["prompt"] = s.prompt
            records.append(rec)
    per_bench = {b: {**benchmark_metrics(o, ks), **issues[b]} for b, o in outcomes.items()}
    summary = {"ks": ks, "len_unit": len_unit, "benchmarks": per_bench, "average": average_metrics(per_bench),
               "grader": getattr(backend, "name", type(backend).__name__), "equivalence_errors": eq_errors[0]}
    for b, iss in issues.items():
        if iss["timeouts"] or iss["grader_errors"]:
            log.warning("%s: %d grading timeouts (graded wrong), %d grader errors (counted not correct)",
                        b, iss["timeouts"], iss["grader_errors"])
    if eq_errors[0]:
        log.warning("%d answer-equivalence checks failed in the grader (treated as different answers)", eq_errors[0])
    return ScoreResult(records, summary)


_INT = re.compile(r"[+-]?\d+")


def _int_equal(a: str, b: str) -> Optional[bool]:
    """``int(a) == int(b)`` when both are plain integers ("025", "-3"), else ``None`` (ask the grader)."""
    a, b = a.strip(), b.strip()
    if len(a) < 4000 and len(b) < 4000 and _INT.fullmatch(a) and _INT.fullmatch(b):
        return int(a) == int(b)
    return None


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
