"""DAPO (Yu et al. 2025) batch shaping: dynamic sampling and overlong handling. Options, all off by default.

- Dynamic sampling: a group whose samples all got the same reward has zero group-relative advantage, so it
  only dilutes the batch. ``filter_uniform_groups`` marks the groups to keep; the loop drops the others and
  samples more prompts until the batch is full again.
- Overlong filtering: a truncated response was cut by the length budget, not judged on its merit; excluding it
  from the loss (``overlong_filter_mask``) avoids punishing reasoning that was merely long.
- Soft overlong punishment: ``overlong_reward_shaping`` adds a length penalty that ramps up inside a buffer
  before the budget.

Also here: ``neutral_rewards`` for samples left out of the loss because they have no verdict (a grading
timeout, ``reward.exclude_timeouts``).
"""
from __future__ import annotations

from typing import Optional

import torch


@torch.no_grad()
def filter_uniform_groups(rewards: torch.Tensor, group_size: int, tol: float = 0.0) -> torch.Tensor:
    """Keep mask [B] (bool) for the samples of groups whose rewards are *not* all equal.

    keep_i = (max_{j∈g(i)} r_j − min_{j∈g(i)} r_j) > tol,  g(i) = the group (prompt) of sample i.
    The mask is constant within a group; ``keep.view(-1, group_size)[:, 0]`` is the per-group mask. A group of
    one sample is always uniform, hence always dropped (dynamic sampling needs group_size ≥ 2 to mean
    anything). ``tol`` > 0 also treats nearly-equal float rewards as uniform.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be [B], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"batch of {rewards.numel()} rewards is not a whole number of groups of {group_size}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf")
    g = rewards.float().view(-1, group_size)
    spread = g.max(dim=1).values - g.min(dim=1).values
    return (spread > tol).repeat_interleave(group_size)


def overlong_filter_mask(truncated: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Exclude truncated samples from the loss (DAPO overlong filtering).

    keep_i = ¬truncated_i. Without ``mask``: returns keep [B] (bool). With the token ``mask`` [B, T]: returns
    mask · keep_i (same dtype as ``mask``), i.e. the loss mask with truncated rows zeroed.
    """
    if truncated.dim() != 1:
        raise ValueError(f"truncated must be [B], got shape {tuple(truncated.shape)}")
    keep = ~truncated.bool()
    if mask is None:
        return keep
    if mask.dim() != 2 or mask.size(0) != keep.size(0):
        raise ValueError(f"mask must be [B={keep.size(0)}, T], got shape {tuple(mask.shape)}")
    return mask * keep.unsqueeze(1).to(mask.dtype)


@torch.no_grad()
def overlong_reward_shaping(
    lengths: torch.Tensor,
    max_len: int,
    buffer_len: int,
    penalty_factor: float = 1.0,
) -> torch.Tensor:
    """DAPO soft overlong punishment, a penalty [B] to *add* to the rewards. With L = response length,
    L_max = ``max_len``, L_cache = ``buffer_len``, f = ``penalty_factor``:

        0                                   if L ≤ L_max − L_cache
        (L_max − L_cache − L) / L_cache · f if L_max − L_cache < L ≤ L_max   (linear from 0 down to −f)
        −f                                  if L > L_max
    """
    if not 0 < buffer_len <= max_len:
        raise ValueError(f"need 0 < buffer_len <= max_len, got buffer_len={buffer_len}, max_len={max_len}")
    L = lengths.float()
    start = float(max_len - buffer_len)
    ramp = (start - L) / buffer_len * penalty_factor
    penalty = torch.where(L <= start, torch.zeros_like(L), ramp)
    return torch.where(L > max_len, torch.full_like(L, -penalty_factor), penalty)


@torch.no_grad()
def neutral_rewards(rewards: torch.Tensor, drop: torch.Tensor, group_size: int) -> torch.Tensor:
    """Rewards where each dropped sample (``drop`` [B] bool, e.g. a grading timeout: no verdict) gets the mean of
    the kept samples of its group, so it neither raises nor lowers the group baseline:

        r'_i = r_i                              if not drop_i
        r'_i = mean_{j ∈ g(i), not drop_j} r_j  if drop_i   (0 when the whole group is dropped)

    Its own loss is removed separately (its tokens leave the mask); this only keeps the others' advantages honest.
    """
    if rewards.shape != drop.shape or rewards.dim() != 1:
        raise ValueError(f"rewards {tuple(rewards.shape)} and drop {tuple(drop.shape)} must both be [B]")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"batch of {rewards.numel()} rewards is not a whole number of groups of {group_size}")
    r = rewards.float().view(-1, group_size)
    keep = (~drop.bool()).view(-1, group_size).float()
    mean = (r * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp(min=1.0)
    return torch.where(keep.bool(), r, mean.expand_as(r)).view(-1)
