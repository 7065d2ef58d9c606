"""The token layout every model forward in this project uses, and the prompt-sharing forward.

    input_ids      = [ pad pad p1 p2 p3 | r1 r2 r3 pad ]      shape [B, P + T]
    attention_mask = [  0   0   1  1  1 |  1  1  1   0 ]
                       left-padded prompt   right-padded response
                       (P columns)          (T columns)

``P`` is the padded prompt length shared by the batch. Response token ``t`` sits in column ``P + t`` and is
predicted by the logits of column ``P + t - 1``. Position ids come from the attention mask
(``cumsum(mask) - 1``), so left padding does not shift positions.

Shared by the rollout backends (HF decode with one prefill per distinct prompt) and the trainer's log-prob
forward (``trainer.models.actor``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from mathrl_core.models.loading import unwrap_model

@dataclass
class SequenceBatch:
    """``[left-padded prompt | right-padded response]`` tensors (see the module docstring)."""

    input_ids: torch.Tensor       # [B, P + T] long
    attention_mask: torch.Tensor  # [B, P + T] long (1 = real token)
    prompt_len: int               # P

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len:]

    @property
    def response_mask(self) -> torch.Tensor:
        """[B, T] 1 for real response tokens, 0 for right padding."""
        return self.attention_mask[:, self.prompt_len:]

    def to(self, device) -> "SequenceBatch":
        return SequenceBatch(self.input_ids.to(device), self.attention_mask.to(device), self.prompt_len)


def pad_sequences(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]],
                  pad_token_id: int, device: torch.device | str | None = None) -> SequenceBatch:
    """Build a :class:`SequenceBatch` from unpadded prompt and response token lists (same length lists)."""
    if len(prompt_ids) != len(response_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(response_ids)} responses")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token")
    B = len(prompt_ids)
    P = max(len(p) for p in prompt_ids)
    T = max((len(r) for r in response_ids), default=0)
    ids = torch.full((B, P + T), pad_token_id, dtype=torch.long)
    mask = torch.zeros((B, P + T), dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        ids[i, P - len(p):P] = torch.as_tensor(list(p), dtype=torch.long)
        mask[i, P - len(p):P] = 1
        if len(r):
            ids[i, P:P + len(r)] = torch.as_tensor(list(r), dtype=torch.long)
            mask[i, P:P + len(r)] = 1
    return SequenceBatch(ids.to(device) if device else ids, mask.to(device) if device else mask, P)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``cumsum(mask) - 1`` for real tokens (padding gets 1, as HF ``generate`` does)."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 1)


_LOGITS_TO_KEEP: dict[type, bool] = {}


def accepts_logits_to_keep(model: nn.Module) -> bool:
    """Whether the HF model's forward takes ``logits_to_keep`` (cached per class)."""
    cls = type(unwrap_model(model))
    if cls not in _LOGITS_TO_KEEP:
        try:
            _LOGITS_TO_KEEP[cls] = "logits_to_keep" in inspect.signature(cls.forward).parameters
        except (TypeError, ValueError):
            _LOGITS_TO_KEEP[cls] = False
    return _LOGITS_TO_KEEP[cls]


def distinct_prompts(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int):
    """``(first, inverse)``: the first row of each distinct prompt, and each row's index into ``first``.

    Two rows share a prompt when their prompt columns hold the same tokens at the same (unpadded) places.
    """
    keyed = input_ids[:, :prompt_len].masked_fill(attention_mask[:, :prompt_len] == 0, -1)
    _, inverse = torch.unique(keyed, dim=0, return_inverse=True)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    first = torch.full((int(inverse.max()) + 1,), input_ids.shape[0], dtype=torch.long, device=input_ids.device)
    first = first.scatter_reduce(0, inverse, rows, reduce="amin")
    return first, inverse


def forward_distinct_prompts(model, input_ids, attention_mask, first, inverse, cache=None):
    """Forward the rows ``first`` (each distinct prompt once) with a KV cache, then gather the cache rows back to
    the batch (row i gets the cache of ``first[inverse[i]]``; differentiable). ``input_ids``/``attention_mask``
    are the left-padded prompt columns to run; ``cache``: a ``Cache`` to fill (default: the model's own).
    Returns the model output: ``past_key_values`` (now batch-sized) and the logits of the last column only."""
    ids, mask = input_ids[first], attention_mask[first]
    kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask), use_cache=True)
    if cache is not None:
        kwargs["past_key_values"] = cache
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = 1
    out = model(**kwargs)
    if out.past_key_values is None or out.past_key_values.get_seq_length() != ids.shape[1]:
        raise RuntimeError(f"{type(model).__name__} returned no KV cache for the prompt pass; "
                           "set train.shared_prompt_forward=false and rollout.hf_fast_decode=false for this model")
    out.past_key_values.reorder_cache(inverse)
    return out
