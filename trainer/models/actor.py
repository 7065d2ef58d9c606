"""Per-token log-probs and entropy of response tokens, for the actor, the reference and the rollout check.

Sequence layout used everywhere in the trainer (one batch = one tensor, no per-sample offsets)::

    input_ids      = [ pad pad p1 p2 p3 | r1 r2 r3 pad ]      shape [B, P + T]
    attention_mask = [  0   0   1  1  1 |  1  1  1   0 ]
                       left-padded prompt   right-padded response
                       (P columns)          (T columns)

``P`` is the padded prompt length shared by the batch. Response token ``t`` sits in column ``P + t`` and is
predicted by the logits of column ``P + t - 1``. Position ids come from the attention mask
(``cumsum(mask) - 1``), so left padding does not shift positions.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


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


def _accepts_logits_to_keep(model: nn.Module) -> bool:
    """Whether the HF model's forward takes ``logits_to_keep`` (cached per class)."""
    from trainer.models.loading import unwrap_model

    cls = type(unwrap_model(model))
    if cls not in _LOGITS_TO_KEEP:
        try:
            _LOGITS_TO_KEEP[cls] = "logits_to_keep" in inspect.signature(cls.forward).parameters
        except (TypeError, ValueError):
            _LOGITS_TO_KEEP[cls] = False
    return _LOGITS_TO_KEEP[cls]


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                         return_entropy: bool = False, rows_per_chunk: int = 1):
    """log softmax(logits / τ)[label] and optionally the entropy H = logsumexp(z) − Σ softmax(z)·z, z = logits/τ.

    Works on chunks of ``rows_per_chunk`` sequences in float32 so that a full fp32 ``log_softmax`` of a
    large-vocabulary bf16 logits tensor is never materialised at once. Differentiable.
    ``logits [B, T, V]``, ``labels [B, T]`` → ``[B, T]`` (and ``[B, T]``).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probs, got {temperature}")
    lps, ents = [], []
    for start in range(0, logits.shape[0], rows_per_chunk):
        z = logits[start:start + rows_per_chunk].float()
        if temperature != 1.0:
            z = z / temperature
        lse = torch.logsumexp(z, dim=-1)
        lps.append(z.gather(-1, labels[start:start + rows_per_chunk].unsqueeze(-1)).squeeze(-1) - lse)
        if return_entropy:
            ents.append(lse - (F.softmax(z, dim=-1) * z).sum(-1))
    lp = torch.cat(lps, 0)
    return (lp, torch.cat(ents, 0)) if return_entropy else lp


def _response_logits(model, input_ids, attention_mask, prompt_len):
    """Forward pass; returns the logits of the columns P-1 .. P+T-2 (those that predict the response)."""
    T = input_ids.shape[1] - prompt_len
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask,
                  position_ids=position_ids_from_mask(attention_mask), use_cache=False)
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = T + 1  # only the last T+1 columns go through lm_head
    logits = model(**kwargs).logits
    return logits[:, -(T + 1):-1]


def response_logprobs(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                      temperature: float = 1.0, return_entropy: bool = False,
                      micro_batch_size: int | None = None):
    """log p(response token t | prefix) under softmax(logits / temperature), for every response column.

    Args:
        input_ids, attention_mask: ``[B, P + T]`` in the ``[left-padded prompt | right-padded response]`` layout.
        prompt_len: ``P``.
        temperature: the sampling temperature (log-probs must match what the rollout sampled from).
        return_entropy: also return the per-token entropy of the same (temperature-scaled) distribution.
        micro_batch_size: forward this many sequences at a time (``None`` = all at once).

    Returns:
        ``logprobs [B, T]`` (and ``entropy [B, T]``), 0 at right-padding positions. Differentiable unless the
        caller wraps it in ``torch.no_grad()`` (reference model, old log-probs).
    """
    if prompt_len < 1:
        raise ValueError("prompt_len must be >= 1 (the first response token is predicted from the prompt)")
    B, L = input_ids.shape
    T = L - prompt_len
    if T <= 0:
        empty = input_ids.new_zeros((B, 0), dtype=torch.float32)
        return (empty, empty.clone()) if return_entropy else empty
    mb = micro_batch_size or B
    lps, ents = [], []
    for s in range(0, B, mb):
        ids, mask = input_ids[s:s + mb], attention_mask[s:s + mb]
        logits = _response_logits(model, ids, mask, prompt_len)
        out = logprobs_from_logits(logits, ids[:, prompt_len:], temperature, return_entropy)
        lp, ent = out if return_entropy else (out, None)
        resp_mask = mask[:, prompt_len:].bool()
        lps.append(torch.where(resp_mask, lp, torch.zeros_like(lp)))
        if return_entropy:
            ents.append(torch.where(resp_mask, ent, torch.zeros_like(ent)))
        del logits
    lp = torch.cat(lps, 0)
    return (lp, torch.cat(ents, 0)) if return_entropy else lp


@torch.no_grad()
def reference_logprobs(ref_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       prompt_len: int, temperature: float = 1.0, micro_batch_size: int | None = None):
    """:func:`response_logprobs` of a frozen reference model, without autograd."""
    return response_logprobs(ref_model, input_ids, attention_mask, prompt_len, temperature=temperature,
                             micro_batch_size=micro_batch_size)
