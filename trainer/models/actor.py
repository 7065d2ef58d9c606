"""Per-token log-probs and entropy of response tokens, for the actor, the reference and the rollout check.

The sequence layout (``[left-padded prompt | right-padded response]``, one batch = one tensor) and the
prompt-sharing forward live in ``mathrl_core.models.sequences``.
"""
from __future__ import annotations

import torch
from torch import nn

from mathrl_core.models.loading import unwrap_model
from mathrl_core.models.sequences import (accepts_logits_to_keep, distinct_prompts, forward_distinct_prompts,
                                          position_ids_from_mask)
from trainer.algorithms.entropy import chunk_rows_for, logprobs_from_logits as _chunked_logprobs


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
