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
from torch import nn

from trainer.algorithms.entropy import chunk_rows_for, logprobs_from_logits as _chunked_logprobs


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
    from trainer.models.loading import unwrap_model

    cls = type(unwrap_model(model))
    if cls not in _LOGITS_TO_KEEP:
        try:
            _LOGITS_TO_KEEP[cls] = "logits_to_keep" in inspect.signature(cls.forward).parameters
        except (TypeError, ValueError):
            _LOGITS_TO_KEEP[cls] = False
    return _LOGITS_TO_KEEP[cls]


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                         return_entropy: bool = False):
    """log softmax(logits / τ)[label] and optionally the entropy H = logsumexp(z) − Σ softmax(z)·z, z = logits/τ.

    Computed in float32 chunks of about 4M values (:func:`trainer.algorithms.entropy.chunk_rows_for`), so a
    full fp32 ``log_softmax`` of a large-vocabulary bf16 logits tensor is never materialised at once.
    Differentiable. ``logits [B, T, V]``, ``labels [B, T]`` → ``[B, T]`` (and ``[B, T]``).
    """
    return _chunked_logprobs(logits, labels, chunk_size=chunk_rows_for(logits.shape[-1]),
                             temperature=temperature, return_entropy=return_entropy)


def _response_logits(model, input_ids, attention_mask, prompt_len):
    """Forward pass; returns the logits of the columns P-1 .. P+T-2 (those that predict the response)."""
    T = input_ids.shape[1] - prompt_len
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask,
                  position_ids=position_ids_from_mask(attention_mask), use_cache=False)
    if accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = T + 1  # only the last T+1 columns go through lm_head
    logits = model(**kwargs).logits
    return logits[:, -(T + 1):-1]


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


def _shared_prompt_logits(model, input_ids, attention_mask, prompt_len, first, inverse):
    """The logits that predict the response, with each distinct prompt forwarded once.

    The G samples of a GRPO group repeat one prompt; here the prompt rows ``first`` go through the model once
    (with a KV cache), the cache rows are gathered back to the batch (``inverse``: gradients from every
    sample of the group add up in the shared prompt pass), and the responses are forwarded against it.
    Same values and gradients as :func:`_response_logits`, for about ``(B·T + G'·P) / (B·(P + T))`` of its
    work (G' distinct prompts). Returns two pieces covering response columns ``[0]`` and ``[1, T)``.
    """
    P = prompt_len
    out = forward_distinct_prompts(model, input_ids[:, :P], attention_mask[:, :P], first, inverse)
    head = out.logits[:, -1:].index_select(0, inverse)  # predicts response column 0
    if input_ids.shape[1] == P + 1:
        return [head]
    resp = model(input_ids=input_ids[:, P:-1], attention_mask=attention_mask[:, :-1],
                 position_ids=position_ids_from_mask(attention_mask)[:, P:-1], past_key_values=out.past_key_values,
                 use_cache=True)
    return [head, resp.logits]


def _gradient_checkpointing(model: nn.Module) -> bool:
    from trainer.models.loading import unwrap_model

    return bool(getattr(unwrap_model(model), "is_gradient_checkpointing", False))


def response_logprobs(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                      temperature: float = 1.0, return_entropy: bool = False,
                      micro_batch_size: int | None = None, share_prompts: bool = False):
    """log p(response token t | prefix) under softmax(logits / temperature), for every response column.

    Args:
        input_ids, attention_mask: ``[B, P + T]`` in the ``[left-padded prompt | right-padded response]`` layout.
        prompt_len: ``P``.
        temperature: the sampling temperature (log-probs must match what the rollout sampled from).
        return_entropy: also return the per-token entropy of the same (temperature-scaled) distribution.
        micro_batch_size: forward this many sequences at a time (``None`` = all at once).
        share_prompts: forward each distinct prompt of a micro-batch once and the responses against its KV
            cache (:func:`_shared_prompt_logits`) when rows repeat prompts (at least 2 rows per distinct
            prompt) and the model does not use gradient checkpointing (which turns the cache off).

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
    share_prompts = share_prompts and not (torch.is_grad_enabled() and _gradient_checkpointing(model))
    mb = micro_batch_size or B
    lps, ents = [], []
    for s in range(0, B, mb):
        ids, mask = input_ids[s:s + mb], attention_mask[s:s + mb]
        pieces = None
        if share_prompts:
            first, inverse = distinct_prompts(ids, mask, prompt_len)
            if 2 * first.numel() <= ids.shape[0]:
                pieces = _shared_prompt_logits(model, ids, mask, prompt_len, first, inverse)
        if pieces is None:
            pieces = [_response_logits(model, ids, mask, prompt_len)]
        labels, col, lp_parts, ent_parts = ids[:, prompt_len:], 0, [], []
        for logits in pieces:
            out = logprobs_from_logits(logits, labels[:, col:col + logits.shape[1]], temperature, return_entropy)
            lp_parts.append(out[0] if return_entropy else out)
            if return_entropy:
                ent_parts.append(out[1])
            col += logits.shape[1]
        del pieces, logits
        resp_mask = mask[:, prompt_len:].bool()
        lp = torch.cat(lp_parts, 1)
        lps.append(torch.where(resp_mask, lp, torch.zeros_like(lp)))
        if return_entropy:
            ent = torch.cat(ent_parts, 1)
            ents.append(torch.where(resp_mask, ent, torch.zeros_like(ent)))
    lp = torch.cat(lps, 0)
    return (lp, torch.cat(ents, 0)) if return_entropy else lp


@torch.no_grad()
def reference_logprobs(ref_model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       prompt_len: int, temperature: float = 1.0, micro_batch_size: int | None = None):
    """:func:`response_logprobs` of a frozen reference model, without autograd."""
    return response_logprobs(ref_model, input_ids, attention_mask, prompt_len, temperature=temperature,
                             micro_batch_size=micro_batch_size)
