"""Where grading happens: the reward service's grading library in a killable worker pool (default), the
HTTP reward service when a URL is given, or plainly in this process (debugging only: no time limit).

Every backend has ``grade_many([(completion, gold), ...]) -> [Grade, ...]`` (order preserved) and
``close()``. The same backend decides whether two extracted answers are equivalent, for maj@k
clustering: ``answers_equivalent(backend, pairs)`` grades ``\\boxed{candidate}`` against the
representative as gold, so the equivalence is exactly the grader's.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from reward_service.grading import CORRECT, Grade

ERROR = "error"            # verdict of an item on which the grading function raised (a grader bug)
TIMEOUT_REASON = "timeout"  # reason of an item that ran past the per-item time limit (verdict "wrong")

Item = tuple  # (completion: str, gold: str | int | float | list)


class GradingError(RuntimeError):
    """Grading could not be done (service down, pool broken). Never turned into a verdict."""


class InProcessBackend:
    """Calls ``reward_service.grading.grade`` in this process: no isolation, no time limit."""

    name = "inline"

    def __init__(self, last_number_fallback: bool = False):
        self.last_number_fallback = last_number_fallback

    def grade_many(self, items: Sequence[Item], on_error: str = "raise") -> list[Grade]:
        from reward_service.grading import grade

        out = []
        for c, g in items:
            try:
                out.append(grade(c, g, last_number_fallback=self.last_number_fallback))
            except Exception as e:  # noqa: BLE001 - a grader bug: raised, or kept visible as an "error" verdict
                if on_error == "raise":
                    raise
                out.append(Grade(ERROR, None, f"grader error: {type(e).__name__}: {e}"[:500], None))
        return out

    def close(self) -> None:
        pass


class PoolBackend:
    """The reward service's killable process pool (per-item time limit enforced by killing a worker)."""

    name = "pool"

    def __init__(self, workers: int = 2, timeout: float = 2.0, last_number_fallback: bool = False):
        from reward_service.pool import GradingPool

        self.last_number_fallback = last_number_fallback
        self.pool = GradingPool(workers=workers, timeout=timeout)

    def grade_many(self, items: Sequence[Item], on_error: str = "raise") -> list[Grade]:
        return list(self.pool.grade_many(_pool_items(items, self.last_number_fallback), on_error=on_error))

    def close(self) -> None:
        close = getattr(self.pool, "close", None) or getattr(self.pool, "shutdown", None)
        if close:
            close()


def _pool_items(items: Sequence[Item], fallback: bool) -> list:
    return [(c, g, fallback) if fallback else (c, g) for c, g in items]


class HTTPBackend:
    """The reward service over HTTP (``reward_service.client``). The verdict is what we keep; the scheme decides
    the extraction rules (a scheme with the last-number fallback, like ``correctness``, reads the last number of
    an answerless completion). ``scheme`` default: ``correctness`` with ``last_number_fallback``, else
    ``simplerl``. A trainer's eval hook passes its run's reward scheme, so eval grades like the training reward."""

    name = "http"

    def __init__(self, url: str, token: Optional[str] = None, last_number_fallback: bool = False,
                 timeout: float = 60.0, scheme: Optional[str] = None):
        from reward_service.client import RewardClient

        self.scheme = scheme or ("correctness" if last_number_fallback else "simplerl")
        self.client = RewardClient(url, token=token, timeout=timeout)

    def grade_many(self, items: Sequence[Item], on_error: str = "raise") -> list[Grade]:
        # The service answers 500 when the grading function raises: the request fails as a whole.
        results = self.client.score([c for c, _ in items], [g for _, g in items], scheme=self.scheme)
        return [_as_grade(r) for r in results]

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close:
            close()


def _as_grade(r: Any) -> Grade:
    if isinstance(r, Grade):
        return r
    get = r.get if isinstance(r, dict) else (lambda k, d=None: getattr(r, k, d))
    return Grade(verdict=get("verdict"), answer=get("answer"), reason=get("reason", ""), method=get("method"))


def make_backend(kind: str = "pool", *, url: Optional[str] = None, workers: int = 2, timeout: float = 2.0,
                 token: Optional[str] = None, last_number_fallback: bool = False, scheme: Optional[str] = None):
    """``kind`` "pool" | "http" | "inline"; a ``url`` always means the HTTP service (graded with ``scheme``'s
    rules when given)."""
    if url:
        return HTTPBackend(url, token=token, last_number_fallback=last_number_fallback, scheme=scheme)
    if kind == "pool":
        return PoolBackend(workers=workers, timeout=timeout, last_number_fallback=last_number_fallback)
    if kind == "inline":
        return InProcessBackend(last_number_fallback=last_number_fallback)
    if kind == "http":
        raise ValueError("the http grader needs --grader-url")
    raise ValueError(f"unknown grader {kind!r}; use pool, http or inline")


def grade_all(backend, items: Sequence[Item], *, chunk: int = 512, progress: bool = False,
              desc: str = "grading", on_error: str = "raise") -> list[Grade]:
    """Grade ``items`` in chunks (a progress bar when asked). Raises :class:`GradingError` when the backend
    fails, answers with the wrong number of results, or (``on_error="raise"``) the grading function raised
    on an item; with ``on_error="return"`` such items come back with verdict ``"error"``."""
    out: list[Grade] = []
    bar = _bar(len(items), desc) if progress else None
    try:
        for i in range(0, len(items), chunk):
            part = items[i:i + chunk]
            try:
                res = backend.grade_many(part, on_error=on_error)
            except Exception as e:  # noqa: BLE001 - re-raised with context, never turned into a verdict
                raise GradingError(f"{getattr(backend, 'name', 'grader')} failed on items {i}..{i + len(part) - 1}: "
                                   f"{type(e).__name__}: {e}") from e
            if len(res) != len(part):
                raise GradingError(f"grader returned {len(res)} results for {len(part)} items")
            out.extend(_as_grade(r) for r in res)
            if bar:
                bar.update(len(part))
    finally:
        if bar:
            bar.close()
    return out


def equivalence_items(pairs: Sequence[tuple]) -> list:
    """Grading items that ask whether ``candidate`` is equivalent to ``representative``."""
    return [(f"\\boxed{{{a}}}", b) for a, b in pairs]


def answers_equivalent(backend, pairs: Sequence[tuple], **kw) -> list[bool]:
    """Grader equivalence of extracted answers: ``\\boxed{candidate}`` graded against ``representative``.

    A pair the grader cannot settle (timeout, no answer, a grader error) counts as not equivalent, so the
    candidate founds its own cluster; nothing is dropped."""
    return [g.verdict == CORRECT for g in grade_all(backend, equivalence_items(pairs), on_error="return", **kw)]


def _bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True)
