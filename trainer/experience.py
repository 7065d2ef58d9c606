"""The experience batch one RL step trains on, and how rollouts are padded into it.

Layout of every sequence: ``[left-padded prompt | response | right padding]`` (built by
``RolloutOutput.to_batch`` / ``mathrl_core.models.sequences.pad_sequences``); ``prompt_len`` (P) is the padded prompt
width shared by the batch, T the longest response. Token-level tensors (log-probs, values,
advantages, ...) are ``[B, T]`` over response positions, with ``response_mask`` marking real tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional, Sequence

import torch

from mathrl_core.rollout.base import RolloutOutput


@dataclass
class ScoredRollout:
    """Rollouts and their grades, what ``RLLoop.collect`` hands to ``make_experience``: row ``j`` is the rollout
    row ``out[j]`` with its gold ``golds[j]``, reward ``rewards[j]``, verdict ``verdicts[j]`` and whether its grading
    timed out (``timed_out[j]``: no verdict at all)."""

    out: RolloutOutput
    golds: list[Any]
    rewards: list[float]
    verdicts: list[str]
    timed_out: Optional[list[bool]] = None  # grading timeouts (no verdict); None: none

    def __post_init__(self):
        n = len(self.out)
        if self.timed_out is None:
            self.timed_out = [False] * n
        for name in ("golds", "rewards", "verdicts", "timed_out"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"ScoredRollout.{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.out)

    def select(self, rows: Sequence[int]) -> "ScoredRollout":
        return ScoredRollout(self.out.select(rows), [self.golds[j] for j in rows], [self.rewards[j] for j in rows],
                             [self.verdicts[j] for j in rows], [self.timed_out[j] for j in rows])

    @staticmethod
    def concat(parts: Sequence["ScoredRollout"]) -> "ScoredRollout":
        return ScoredRollout(RolloutOutput.concat([p.out for p in parts]), [g for p in parts for g in p.golds],
                             [r for p in parts for r in p.rewards], [v for p in parts for v in p.verdicts],
                             [t for p in parts for t in p.timed_out])


@dataclass
class Experience:
    input_ids: torch.Tensor            # [B, P+T] long
    attention_mask: torch.Tensor       # [B, P+T] long
    response_mask: torch.Tensor        # [B, T] float, 1 on real response tokens
    prompt_len: int                    # P
    rewards: torch.Tensor              # [B] scalar reward of each sample (after shaping)
    truncated: torch.Tensor            # [B] bool, generation hit max_new_tokens
    old_logprobs: Optional[torch.Tensor] = None      # [B, T] policy before this step's updates
    rollout_logprobs: Optional[torch.Tensor] = None  # [B, T] as reported by the rollout engine
    ref_logprobs: Optional[torch.Tensor] = None      # [B, T] frozen reference policy
    values: Optional[torch.Tensor] = None            # [B, T] critic, before updates
    advantages: Optional[torch.Tensor] = None        # [B, T]
    returns: Optional[torch.Tensor] = None           # [B, T] critic targets
    tis_weights: Optional[torch.Tensor] = None       # [B, T] truncated importance weights (mismatch fix)
    # True: one on-policy update by the very weights that sampled (RLLoop.old_logprobs_from_update); the old
    # log-probs are the update's own detached log-probs (ratio = 1 exactly) and old_logprobs stays None
    old_logprobs_from_update: bool = False
    info: dict = field(default_factory=dict)         # non-tensor extras (not split)

    def old_logprobs_for(self, logprobs: torch.Tensor) -> torch.Tensor:
        """PPO's old log-probs for this batch, given the update's current ``logprobs``."""
        if self.old_logprobs_from_update:
            return logprobs.detach()
        if self.old_logprobs is None:
            raise ValueError("experience without old log-probs (and not marked old_logprobs_from_update)")
        return self.old_logprobs

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]

    def _tensor_fields(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                yield f.name, v

    def select(self, idx: torch.Tensor | list[int]) -> "Experience":
        """The sub-batch of rows ``idx`` (tensor fields indexed on dim 0)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return replace(self, **{k: v[idx] for k, v in self._tensor_fields()}, info=dict(self.info))

    def split(self, size: int) -> list["Experience"]:
        """Consecutive chunks of ``size`` rows (the last may be smaller)."""
        return [self.select(list(range(i, min(i + size, self.batch_size))))
                for i in range(0, self.batch_size, size)]

    def shard(self, num_shards: int) -> list["Experience"]:
        """``num_shards`` near-equal consecutive shards (data-parallel ranks)."""
        bounds = torch.linspace(0, self.batch_size, num_shards + 1).round().long().tolist()
        return [self.select(list(range(bounds[i], bounds[i + 1]))) for i in range(num_shards)]

    def to(self, device) -> "Experience":
        return replace(self, **{k: v.to(device) for k, v in self._tensor_fields()})

    @staticmethod
    def concat(parts: list["Experience"]) -> "Experience":
        """Inverse of ``shard``/``split`` for batches with the same ``prompt_len``."""
        first = parts[0]
        out = {}
        for name, v in first._tensor_fields():
            if any(getattr(p, name) is None for p in parts):
                continue
            out[name] = _cat_padded([getattr(p, name) for p in parts])
        return replace(first, **out)


def _cat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate on dim 0, right-padding dim 1 with zeros where widths differ."""
    if tensors[0].dim() < 2:
        return torch.cat(tensors)
    width = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in tensors])
