"""What the grading pool takes and gives: items, errors, counters (no processes here).

Split from :mod:`reward_service.pool`, which re-exports every name.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reward_service.grading import CORRECT, NO_ANSWER, WRONG
from reward_service.worker import ERROR, INVALID

TIMEOUT_REASON = "timeout"
# Upper bounds of the per-item grading-time histogram (seconds); the last bucket is +Inf.
ITEM_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class GradingPoolError(RuntimeError):
    """The pool cannot grade (closed, or its workers cannot start). Never turned into a reward."""


def _first_failure(failures: list) -> tuple[int, str]:
    """The first failed item's index, and its reason with a count of the others."""
    i, reason = failures[0]
    more = f" (and {len(failures) - 1} more items)" if len(failures) > 1 else ""
    return i, f"{reason}{more}"


class GraderError(GradingPoolError):
    """The grading function raised on some items (a grader bug). ``failures`` = [(index, reason)]."""

    def __init__(self, failures: list, grades: list):
        self.failures, self.grades = failures, grades
        i, what = _first_failure(failures)
        super().__init__(f"the grading function failed on item {i}: {what}")


class InvalidItemError(ValueError):
    """The grader rejected some items' input (e.g. an empty gold). ``failures`` = [(index, reason)]."""

    def __init__(self, failures: list, grades: list):
        self.failures, self.grades = failures, grades
        i, what = _first_failure(failures)
        super().__init__(f"item {i} cannot be graded: {what}")


def check_errors(grades: list) -> list:
    """Raise GraderError (grader bug) or InvalidItemError (bad input) for ERROR / INVALID grades."""
    failures = [(i, g.reason) for i, g in enumerate(grades) if g.verdict == ERROR]
    if failures:
        raise GraderError(failures, grades)
    invalid = [(i, g.reason) for i, g in enumerate(grades) if g.verdict == INVALID]
    if invalid:
        raise InvalidItemError(invalid, grades)
    return grades


class GradedBatch(list):
    """The grades of a batch in input order (a ``list`` of Grade), and ``retries[i]``: how many times item i was
    run again on another worker because its worker hung past the time limit or died while grading it (0 or 1).
    A ``timeout`` grade with ``retries[i] == 1`` exceeded the limit twice, on two different workers."""

    def __init__(self, grades: list, retries: list):
        super().__init__(grades)
        self.retries = retries


@dataclass(frozen=True)
class GradeItem:
    """One grading request: a completion, its gold answer, and whether a last-number fallback is allowed."""

    completion: str
    gold: Any
    last_number_fallback: bool = False


def _as_item(x: Any) -> GradeItem:
    if isinstance(x, GradeItem):
        return x
    if isinstance(x, dict):
        return GradeItem(x["completion"], x["gold"], bool(x.get("last_number_fallback", False)))
    if isinstance(x, (tuple, list)) and len(x) in (2, 3):
        return GradeItem(x[0], x[1], bool(x[2]) if len(x) == 3 else False)
    raise TypeError(f"a grading item is a GradeItem, a dict or a (completion, gold[, fallback]) tuple, got {x!r:.80}")


@dataclass
class PoolStats:
    """Counters since the pool started (read by the service's /metrics)."""

    items: int = 0  # items answered (graded, cached, timed out or crashed)
    verdicts: dict = field(default_factory=lambda: {CORRECT: 0, WRONG: 0, NO_ANSWER: 0})
    timeouts: int = 0  # items graded wrong/timeout: over the limit on two workers
    timeout_retries: int = 0  # items run again on another worker after exceeding the limit once
    crashes: int = 0  # workers that died while grading (not killed by us)
    crash_verdicts: int = 0  # items graded wrong because they killed a worker twice
    grader_errors: int = 0  # the grading function raised
    retries: int = 0  # items run again after their worker died
    restarts: int = 0  # replacement workers spawned (after timeouts and crashes)
    startup_failures: int = 0  # workers that could not be started or died before they were ready
    cache_hits: int = 0
    cache_misses: int = 0
    item_seconds_buckets: list = field(default_factory=lambda: [0] * (len(ITEM_SECONDS_BUCKETS) + 1))
    item_seconds_sum: float = 0.0
