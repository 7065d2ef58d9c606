"""Faster HF ``generate`` for RL rollouts, through HF's own extension points (a ``Cache``, an attention function
registered in ``AttentionInterface``, a ``LogitsProcessor``). Each piece computes what stock ``generate``
computes; the tests compare them token for token.

- :class:`PreallocatedLayer`: the KV cache of one layer in a buffer sized for prompt + ``max_new_tokens``;
  a decode step writes one column instead of re-concatenating the whole cache (``DynamicLayer`` does).
- :func:`grouped_query_decode_attention`: one-token decode attention for grouped-query models without
  repeating the K/V heads (HF's SDPA path copies every cached K/V head ``H / KVH`` times per step when there
  is a padding mask): queries ``[B, H, 1, D]`` are viewed as ``[B, KVH, H/KVH, D]`` and attend to
  ``K, V [B, KVH, S, D]`` directly: ``softmax(q Kᵀ · scale + mask) V``. Prefill (more than one query) is
  HF's SDPA.
- :func:`prefill_shared_prompts`: the n samples of a prompt share its prefill: each distinct prompt's first
  ``P - 1`` tokens are run once and the cache rows are gathered to the batch; ``generate`` then starts from
  the last prompt token.
- Sampling in the logits processor (:class:`mathrl_core.rollout.hf.SamplingProcessor` with ``draw=True``): one
  uniform per row against the cumulative distribution, instead of ``torch.multinomial``'s one exponential
  per vocabulary entry; ``generate`` then runs greedy over a row whose only finite logit is the drawn token.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from transformers.cache_utils import DynamicCache, DynamicLayer

from mathrl_core.models.loading import unwrap_model
from mathrl_core.models.sequences import distinct_prompts, forward_distinct_prompts

ATTENTION_NAME = "rollout_gqa_decode"


class PreallocatedLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys/values live in a ``[B, KVH, capacity, D]`` buffer (built lazily);
    ``keys``/``values`` are views of its first ``length`` columns."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        b, h, _, d = key_states.shape
        self._k = key_states.new_zeros(b, h, self.capacity, d)
        self._v = value_states.new_zeros(b, h, self.capacity, value_states.shape[-1])
        self._views()
        self.is_initialized = True

    def _views(self) -> None:
        self.keys = self._k[:, :, :self.length]
        self.values = self._v[:, :, :self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self.length + n > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({self.length} + {n} tokens)")
        self._k[:, :, self.length:self.length + n] = key_states
        self._v[:, :, self.length:self.length + n] = value_states
        self.length += n
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.is_initialized:
            self._k = self._k.index_select(0, beam_idx.to(self._k.device))
            self._v = self._v.index_select(0, beam_idx.to(self._v.device))
            self._views()

    def reset(self) -> None:
        self.length = 0
        if self.is_initialized:
            self._views()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("a preallocated rollout cache is not cropped")

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.reorder_cache(torch.arange(self._k.shape[0], device=self._k.device).repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.reorder_cache(torch.as_tensor(indices, device=self._k.device).flatten())


def all_full_attention(model: nn.Module) -> bool:
    """Whether every decoder layer is plain full attention (no sliding window, no linear attention): the case
    the preallocated cache and the decode attention handle. Other models keep HF's defaults."""
    cfg = unwrap_model(model).config.get_text_config(decoder=True)
    layer_types = getattr(cfg, "layer_types", None)
    if layer_types is not None:
        return all(t == "full_attention" for t in layer_types)
    return not (getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None))


def preallocated_cache(model: nn.Module, capacity: int):
    """A ``DynamicCache`` of :class:`PreallocatedLayer` (one per decoder layer) holding ``capacity`` tokens."""
    cfg = unwrap_model(model).config.get_text_config(decoder=True)
    cache = DynamicCache()
    cache.layers = [PreallocatedLayer(capacity) for _ in range(cfg.num_hidden_layers)]
    cache.layer_class_to_replicate = None
    return cache


def grouped_query_decode_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                                   **kwargs):
    """HF attention-interface function. One query token: ``softmax(q Kᵀ · scale + mask) V`` per KV head, the
    ``H / KVH`` query heads of a group stacked as rows (no K/V copy), softmax in float32 as HF's eager path.
    More than one query token, a sliding window or dropout: HF's SDPA function."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    b, h, q_len, d = query.shape
    if q_len != 1 or kwargs.get("sliding_window") or (dropout and module.training):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    kvh = key.shape[1]
    scale = scaling if scaling is not None else d ** -0.5
    q = query.reshape(b, kvh, h // kvh, d)                     # head j = kv head j // (H / KVH)
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [B, KVH, H/KVH, S]
    if attention_mask is not None:
        mask = attention_mask[:, :, -1:, -key.shape[-2]:]        # [B, 1, 1, S]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.float()
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)                             # [B, KVH, H/KVH, D]
    return out.reshape(b, 1, h, value.shape[-1]), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if ATTENTION_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION_NAME, grouped_query_decode_attention)
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)  # the same boolean masks as SDPA


@contextlib.contextmanager
def decode_attention(model: nn.Module):
    """Use :func:`grouped_query_decode_attention` inside the block when the model runs SDPA on full-attention
    layers; anything else (flash-attention, eager, sliding windows) is left as it is."""
    cfg = unwrap_model(model).config
    if cfg._attn_implementation != "sdpa" or not all_full_attention(model):
        yield False
        return
    _register_attention()
    cfg._attn_implementation = ATTENTION_NAME
    try:
        yield True
    finally:
        cfg._attn_implementation = "sdpa"


@torch.no_grad()
def prefill_shared_prompts(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache) -> bool:
    """Fill ``cache`` with the first ``P - 1`` columns of every row, running each distinct prompt once.

    ``input_ids``/``attention_mask``: ``[B, P]`` left-padded prompts. Returns False (cache untouched) when
    no prompt repeats or ``P < 2``; then ``generate`` prefills as usual.
    """
    P = input_ids.shape[1]
    if P < 2:
        return False
    first, inverse = distinct_prompts(input_ids, attention_mask, P)
    if first.numel() == input_ids.shape[0]:
        return False
    forward_distinct_prompts(model, input_ids[:, :-1], attention_mask[:, :-1], first, inverse, cache=cache)
    return True


def draw_from_logits(z: torch.Tensor) -> torch.Tensor:
    """One token per row from ``softmax(z)`` (``z [B, V]`` float32, −inf = excluded), by inverse CDF: the
    first index whose cumulative probability exceeds ``u · total``, ``u ~ U[0, 1)`` from the global torch RNG.
    Returns ``[B, 1]`` long. A row whose pick has probability 0 (only a rounding at the top end of the CDF
    can do that) is drawn again with ``torch.multinomial``."""
    probs = torch.softmax(z, dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(z.shape[0], 1, device=z.device) * cdf[:, -1:]
    token = torch.searchsorted(cdf, u, right=True).clamp_(max=z.shape[-1] - 1)
    bad = probs.gather(1, token).squeeze(1) <= 0
    if bool(bad.any()):
        token[bad] = torch.multinomial(probs[bad], 1)
    return token
