"""How stale a batch is: pure functions over the per-token policy versions a rollout reports.

A sample's staleness at trainer step s (which trains from version s-1) is ``s-1 - v_min``, v_min the oldest
version among its tokens (a partial rollout continued under newer weights has several).
"""
from __future__ import annotations

from typing import Sequence

from trainer.async_rl.errors import StalenessBoundExceeded


def staleness_metrics(versions: Sequence[Sequence[int]], trainer_version: int, bound: int) -> dict[str, float]:
    """Per-step metrics of a batch's staleness (versions behind ``trainer_version``):

    ``async/staleness_mean``, ``async/staleness_max`` (per sample, by its oldest token),
    ``async/staleness_token_mean`` (per token), ``async/staleness_frac_<k>`` for k = 0..bound (the histogram:
    the fraction of samples k versions behind), ``async/multi_version_frac`` (samples whose tokens come from more
    than one version: partial rollouts). Raises :class:`StalenessBoundExceeded` when a sample is more than
    ``bound`` versions behind, or ahead of the trainer (a version it has not produced yet)."""
    per_sample, tokens, token_sum, multi = [], 0, 0, 0
    for row in versions:
        if not row:
            continue
        lag = [trainer_version - v for v in row]
        per_sample.append(max(lag))
        tokens += len(lag)
        token_sum += sum(lag)
        multi += min(row) != max(row)
    if not per_sample:
        return {}
    worst, best = max(per_sample), min(trainer_version - max(r) for r in versions if r)
    if worst > bound or best < 0:
        raise StalenessBoundExceeded(
            f"a batch trained from version {trainer_version} holds samples from versions "
            f"{trainer_version - worst}..{trainer_version - best}: outside the bound max_staleness={bound}")
    n = len(per_sample)
    m = {"async/staleness_mean": sum(per_sample) / n, "async/staleness_max": float(worst),
         "async/staleness_token_mean": token_sum / tokens, "async/multi_version_frac": multi / n}
    for k in range(bound + 1):
        m[f"async/staleness_frac_{k}"] = sum(1 for x in per_sample if x == k) / n
    return m
