"""Evaluation metrics as pure functions (no grading, no I/O).

Conventions (the seeds' tables; Qwen2.5-Math's evaluation for majority voting):

- Per problem i with n_i samples of which c_i are correct:

  * ``pass@k`` — the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``, averaged over
    problems. ``pass@1`` is therefore ``c/n``: for a greedy run (n = 1) it is greedy accuracy.
    A problem with fewer than k samples has no pass@k estimate; it is left out of that metric (the
    summary says how many problems were counted).
  * ``avg_pass_rate`` — mean accuracy over the n samples, ``c_i / n_i``, averaged over problems (the
    seeds' "avg@n"; equal to pass@1 by construction, reported under its own name).
  * ``maj@k`` — majority vote over the *first k* samples in generation order (Qwen2.5-Math's
    ``rm_maj_eval``: ``preds[:k]``). Answers are clustered by mathematical equivalence (the grader's),
    not by string: sample j joins the earliest cluster whose representative (its first member) is
    equivalent to it, else founds a new cluster. Samples without an answer do not vote. The cluster with
    most votes wins; ties go to the cluster whose first member came earliest. maj@k is correct when the
    winning cluster's representative was graded correct; a problem whose first k samples have no answer
    at all scores 0. maj@1 is the accuracy of the first sample. Problems with fewer than k samples are
    left out, as for pass@k.
  * ``no_answer_rate`` — fraction of samples with verdict ``no_answer``, averaged over problems.
  * ``avg_len`` — mean completion length over all samples (micro average), in tokens when known.

- Per benchmark: the means above over its problems. The ``average`` row is the unweighted mean of each
  metric over benchmarks (the seeds' "Avg." column); ``None`` when a benchmark lacks the metric.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import comb
from typing import Callable, Iterable, Optional, Sequence

EquivalenceFn = Callable[[list], list]  # [(candidate, representative), ...] -> [bool, ...]


# ---------------------------------------------------------------------------------------------
# Per-problem estimators.
# ---------------------------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimate for one problem (Chen et al. 2021, eq. 1).

        pass@k = 1 - C(n - c, k) / C(n, k)
               = 1 - prod_{i = n-c+1}^{n} (1 - k / i)

    ``n`` samples, ``c`` of them correct, ``1 <= k <= n``. Computed exactly with integer binomials and
    one final rounding to float, so it is stable for any n (no cancellation, no overflow); when
    ``n - c < k`` every k-subset holds a correct sample and the result is 1.0.
    Example: n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7.
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError("n, c and k must be integers")
    if n < 1 or not 0 <= c <= n:
        raise ValueError(f"need n >= 1 and 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1 - Fraction(comb(n - c, k), comb(n, k)))


def mean_pass_rate(correct: Sequence[bool]) -> float:
    """Average pass rate of one problem: c / n, the fraction of its samples graded correct."""
    if not correct:
        raise ValueError("no samples")
    return sum(bool(x) for x in correct) / len(correct)


def no_answer_rate(no_answer: Sequence[bool]) -> float:
    """Fraction of samples without an extractable answer."""
    if not no_answer:
        raise ValueError("no samples")
    return sum(bool(x) for x in no_answer) / len(no_answer)


def mean_length(lengths: Iterable[Optional[int]]) -> Optional[float]:
    """Mean length (tokens, or characters when token counts are unknown) over samples; ``None`` if empty."""
    vals = [x for x in lengths if x is not None]
    return sum(vals) / len(vals) if vals else None


# ---------------------------------------------------------------------------------------------
# Majority voting over answers clustered by equivalence.
# ---------------------------------------------------------------------------------------------

def cluster_answers_many(answer_lists: Sequence[Sequence[Optional[str]]],
                         equivalent_many: EquivalenceFn) -> list[list[Optional[int]]]:
    """Cluster each problem's answers by equivalence; returns a cluster id per sample (``None`` when the
    sample has no answer).

    Greedy in sample order: sample j gets the id of the earliest cluster whose representative (first
    member) is equivalent to it, else a new id; ids therefore count up in order of first appearance.
    Equal strings (after stripping whitespace) are the same answer without asking the oracle.
    ``equivalent_many([(candidate, representative), ...]) -> [bool, ...]`` is called once per round
    with the pairs of every problem (one round per distinct answer), so a grader pool can batch them.
    The clustering of a prefix of the samples is the prefix of the clustering.
    """
    distinct: list[list[str]] = []          # per problem: distinct answers in order of appearance
    for answers in answer_lists:
        seen: dict = {}
        for a in answers:
            if a is not None and a.strip() not in seen:
                seen[a.strip()] = None
        distinct.append(list(seen))
    reps: list[list[int]] = [[] for _ in answer_lists]    # indices into distinct[p] that founded clusters
    label: list[dict] = [{} for _ in answer_lists]         # distinct string -> cluster id
    rounds = max((len(d) for d in distinct), default=0)
    for r in range(rounds):
        pairs, owners = [], []
        for p, d in enumerate(distinct):
            if r < len(d):
                for rep in reps[p]:
                    pairs.append((d[r], distinct[p][rep]))
                    owners.append(p)
        verdicts = list(equivalent_many(pairs)) if pairs else []
        if len(verdicts) != len(pairs):
            raise ValueError(f"equivalence oracle returned {len(verdicts)} verdicts for {len(pairs)} pairs")
        it = iter(verdicts)
        for p, d in enumerate(distinct):
            if r >= len(d):
                continue
            match = None
            for cid in range(len(reps[p])):
                if next(it) and match is None:
                    match = cid
            if match is None:
                match = len(reps[p])
                reps[p].append(r)
            label[p][d[r]] = match
    return [[None if a is None else label[p][a.strip()] for a in answers]
            for p, answers in enumerate(answer_lists)]


def cluster_answers(answers: Sequence[Optional[str]], equivalent: Callable[[str, str], bool]) -> list[Optional[int]]:
    """:func:`cluster_answers_many` for one problem with a pairwise ``equivalent(candidate, rep)``."""
    return cluster_answers_many([answers], lambda pairs: [equivalent(a, b) for a, b in pairs])[0]


def majority_vote(cluster_ids: Sequence[Optional[int]], k: int) -> Optional[int]:
    """Index of the sample that represents the majority answer among the first ``k`` samples.

    Votes are counted per cluster id over ``cluster_ids[:k]``; ``None`` (no answer) does not vote.
    Ties go to the cluster that appeared first; the returned index is that cluster's first sample.
    ``None`` when none of the first k samples has an answer.
    """
    counts: dict[int, int] = {}
    first: dict[int, int] = {}
    for j, cid in enumerate(cluster_ids[:k]):
        if cid is None:
            continue
        counts[cid] = counts.get(cid, 0) + 1
        first.setdefault(cid, j)
    if not counts:
        return None
    best = max(counts, key=lambda cid: (counts[cid], -first[cid]))
    return first[best]


def maj_at_k(cluster_ids: Sequence[Optional[int]], correct: Sequence[bool], k: int) -> bool:
    """maj@k of one problem: whether the majority answer of the first k samples is correct
    (see :func:`majority_vote`); needs ``k <= len(correct)``."""
    if not 1 <= k <= len(correct):
        raise ValueError(f"maj@k needs 1 <= k <= n, got k={k}, n={len(correct)}")
    winner = majority_vote(cluster_ids, k)
    return winner is not None and bool(correct[winner])


# ---------------------------------------------------------------------------------------------
# Aggregation.
# ---------------------------------------------------------------------------------------------

@dataclass
class ProblemOutcome:
    """What the metrics need of one graded problem (samples in generation order)."""

    correct: list                       # bool per sample
    no_answer: list                     # bool per sample
    clusters: list = field(default_factory=list)   # cluster id per sample (None = no answer); may cover a prefix
    lengths: list = field(default_factory=list)    # length per sample (None when unknown)


def benchmark_metrics(outcomes: Sequence[ProblemOutcome], ks: Sequence[int]) -> dict:
    """Metrics of one benchmark (means over its problems; see the module docstring).

    Returns ``{"n_problems", "n_samples", "samples_per_problem": [min, max], "pass@k"..., "maj@k"...,
    "avg_pass_rate", "no_answer_rate", "avg_len", "counted": {"pass@k": problems counted, ...}}``.
    A metric no problem can support (k > every n) is ``None``.
    """
    outcomes = [o for o in outcomes if o.correct]
    out: dict = {"n_problems": len(outcomes), "n_samples": sum(len(o.correct) for o in outcomes)}
    if not outcomes:
        return out
    ns = [len(o.correct) for o in outcomes]
    out["samples_per_problem"] = [min(ns), max(ns)]
    counted: dict = {}
    for k in sorted(set(ks)):
        vals = [pass_at_k(len(o.correct), sum(map(bool, o.correct)), k) for o in outcomes if len(o.correct) >= k]
        out[f"pass@{k}"] = sum(vals) / len(vals) if vals else None
        counted[f"pass@{k}"] = len(vals)
    for k in sorted(set(ks)):
        usable = [o for o in outcomes if len(o.correct) >= k and len(o.clusters) >= k]
        vals = [maj_at_k(o.clusters, o.correct, k) for o in usable]
        out[f"maj@{k}"] = sum(vals) / len(vals) if vals else None
        counted[f"maj@{k}"] = len(vals)
    out["avg_pass_rate"] = sum(mean_pass_rate(o.correct) for o in outcomes) / len(outcomes)
    out["no_answer_rate"] = sum(no_answer_rate(o.no_answer) for o in outcomes) / len(outcomes)
    out["avg_len"] = mean_length(x for o in outcomes for x in o.lengths)
    out["counted"] = counted
    return out


SUMMARY_KEYS = ("n_problems", "n_samples", "samples_per_problem", "counted", "timeouts", "grader_errors")


def average_metrics(per_benchmark: dict) -> dict:
    """Unweighted mean over benchmarks of every metric (keys other than the bookkeeping ones).

    A metric that some benchmark lacks (``None``: no problem there had k samples) has no average
    (``None``), so "Avg." always means the mean over every benchmark of the run. ``"benchmarks"``: how
    many benchmarks there are."""
    keys: list = []
    for m in per_benchmark.values():
        keys += [k for k in m if k not in SUMMARY_KEYS and k not in keys]
    avg: dict = {"benchmarks": len(per_benchmark)}
    for key in keys:
        vals = [m.get(key) for m in per_benchmark.values()]
        avg[key] = None if any(v is None for v in vals) else sum(vals) / len(vals)
    return avg
