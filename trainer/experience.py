"""The experience batch one RL step trains on, and how rollouts are padded into it.

Layout of every sequence: ``[left-padded prompt | response | right padding]`` (built by
``RolloutOutput.to_batch`` / ``trainer.models.actor.pad_sequences``); ``prompt_len`` (P) is the padded prompt
width shared by the batch, T the longest response. Token-level tensors (log-probs, values,
advantages, ...) are ``[B, T]`` over response positions, with ``response_mask`` marking real tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional

import torch


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
    info: dict = field(default_factory=dict)         # non-tensor extras (not split)

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
