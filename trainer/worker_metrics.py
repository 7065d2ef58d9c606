"""The metrics training workers report, and how each one combines: declared here, in one place.

A worker accumulates a metric over its micro-batches and the Ray driver combines the ranks' values with the
same rule: ``mean`` (token-weighted within a rank, averaged over ranks), ``sum`` (counters), ``max``/``min``
(extremes), ``last`` (a value every rank shares, e.g. the learning rate). A metric that is not declared here
cannot be reported (``KeyError``), so a new counter is never averaged by accident.
"""
from __future__ import annotations

from collections import defaultdict

REDUCTIONS: dict[str, str] = {
    # policy
    "policy/pg_loss": "mean", "policy/entropy": "mean", "policy/approx_kl": "mean", "policy/ratio_mean": "mean",
    "policy/clip_frac": "mean", "policy/clip_frac_low": "mean", "policy/clip_frac_high": "mean",
    "policy/dual_clip_frac": "mean", "policy/grad_norm": "mean",
    "policy/ratio_max": "max", "policy/ratio_min": "min",
    "policy/early_stopped_microbatches": "sum",
    "policy/lr": "last",
    # critic
    "critic/value_loss": "mean", "critic/value_clip_frac": "mean", "critic/grad_norm": "mean",
    "critic/lr": "last",
}
KINDS = ("mean", "sum", "max", "min", "last")


def reduction(key: str) -> str:
    try:
        return REDUCTIONS[key]
    except KeyError:
        raise KeyError(f"metric {key!r} has no declared reduction: add it to trainer.worker_metrics.REDUCTIONS "
                       f"(one of {KINDS})") from None


class StatsAccumulator:
    """Accumulate per-micro-batch values of declared metrics into one number per key (``reduction(key)``;
    ``mean`` is weighted by ``weight``)."""

    def __init__(self):
        self._val: dict[str, float] = {}
        self._w = defaultdict(float)

    def add(self, key: str, value: float, weight: float = 1.0) -> None:
        kind = reduction(key)
        if kind == "mean":
            self._val[key] = self._val.get(key, 0.0) + value * weight
            self._w[key] += weight
            return
        cur = self._val.get(key)
        if kind == "sum":
            self._val[key] = (cur or 0.0) + value
        elif kind in ("max", "min"):
            self._val[key] = value if cur is None else (max if kind == "max" else min)(cur, value)
        else:  # last
            self._val[key] = value
        self._w[key] = 1.0

    def means(self) -> dict[str, float]:
        return {k: (v / self._w[k] if reduction(k) == "mean" else v) for k, v in self._val.items() if self._w[k] > 0}


def combine_ranks(rows: list[dict]) -> dict:
    """One value per metric from the data-parallel ranks' values (each rank's ``StatsAccumulator.means()``)."""
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows if k in r]
        kind = reduction(k)
        if kind == "sum":
            out[k] = sum(vals)
        elif kind in ("max", "min"):
            out[k] = (max if kind == "max" else min)(vals)
        elif kind == "last":
            out[k] = vals[0]
        else:
            out[k] = sum(vals) / len(vals)
    return out
