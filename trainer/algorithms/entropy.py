"""Token entropy and token log-probabilities from logits, computed in float32 and in row chunks.

Chunking bounds the float32 temporaries to ``chunk_size × V`` (a 152k-token vocabulary at 8k tokens would
otherwise need several GB for one softmax). Both functions stay differentiable (an entropy bonus needs
the gradient); wrap them in ``torch.no_grad()`` for metrics.
"""
from __future__ import annotations

from typing import Optional

import torch

from .losses import aggregate_loss


def _row_chunks(flat: torch.Tensor, chunk_size: Optional[int]):
    """``flat`` [N, V] as views of ``chunk_size`` rows (all rows when None or <= 0).

    ``Tensor.split`` and not indexing: the backward of ``split`` concatenates the chunk gradients once, while
    the backward of each ``flat[a:b]`` slice writes into its own full-size zero tensor (quadratic in the
    number of chunks; it cost a quarter of a tiny model's update step).
    """
    if not chunk_size or chunk_size <= 0 or chunk_size >= flat.size(0):
        return (flat,)
    return flat.split(chunk_size)


def chunk_rows_for(vocab_size: int, budget_elements: int = 1 << 22) -> int:
    """Rows per chunk so that one float32 chunk holds about ``budget_elements`` values (16 MB by default)."""
    return max(1, budget_elements // max(vocab_size, 1))


def _scaled(chunk: torch.Tensor, temperature: float) -> torch.Tensor:
    """z = logits / τ in float32, shifted by its (detached) row max: log-softmax and entropy are
    shift-invariant, and without it logsumexp(z) − Σ p·z cancels two large numbers (at |z| ≈ 1000 float32
    loses ~1e-4)."""
    z = chunk.float()
    if temperature != 1.0:
        z = z / temperature
    return z - z.max(dim=-1, keepdim=True).values.detach()


def _entropy_of(z: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    p = torch.exp(z - lse.unsqueeze(-1))
    # masked vocabulary entries (z = −inf) have p = 0 and contribute 0 instead of 0·(−inf) = NaN
    return lse - torch.where(p > 0, p * z, torch.zeros_like(z)).sum(dim=-1)


def entropy_from_logits(logits: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
    """H = −Σ_v p_v log p_v = logsumexp(z) − Σ_v p_v · z_v, p = softmax(z), over the last dimension.

    Stable for large logits (computed on z − max z) and for −inf logits (masked vocabulary entries, whose
    p = 0 contribute 0 instead of 0·(−inf) = NaN). ``logits`` [..., V] → entropy [...] in float32.
    ``chunk_size`` = rows (positions) per chunk; None = all at once.
    """
    flat = logits.reshape(-1, logits.size(-1))
    if flat.size(0) == 0:
        return flat.new_zeros(logits.shape[:-1], dtype=torch.float32)
    out = []
    for chunk in _row_chunks(flat, chunk_size):
        z = _scaled(chunk, 1.0)
        out.append(_entropy_of(z, torch.logsumexp(z, dim=-1)))
    return torch.cat(out).view(logits.shape[:-1])


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, chunk_size: Optional[int] = None,
                         temperature: float = 1.0, return_entropy: bool = False):
    """log p(y) = z_y − logsumexp(z), z = logits / τ, for each position: ``logits`` [..., V], ``labels`` [...]
    → [...] float32; with ``return_entropy`` also H(softmax(z)) [...] from the same logsumexp (one pass).

    (The caller aligns logits and labels: the logits at position t score the token at t+1.)
    ``chunk_size`` = rows (positions) per float32 chunk; None = all at once. Differentiable.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not align")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probs, got {temperature}")
    flat = logits.reshape(-1, logits.size(-1))
    if flat.size(0) == 0:
        empty = flat.new_zeros(labels.shape, dtype=torch.float32)
        return (empty, empty.clone()) if return_entropy else empty
    flat_labels = labels.reshape(-1, 1)
    lps, ents, start = [], [], 0
    for chunk in _row_chunks(flat, chunk_size):
        z = _scaled(chunk, temperature)
        lse = torch.logsumexp(z, dim=-1)
        lps.append(z.gather(-1, flat_labels[start:start + chunk.size(0)]).squeeze(-1) - lse)
        if return_entropy:
            ents.append(_entropy_of(z, lse))
        start += chunk.size(0)
    lp = torch.cat(lps).view(labels.shape)
    return (lp, torch.cat(ents).view(labels.shape)) if return_entropy else lp


def masked_entropy_mean(
    entropy: torch.Tensor,
    mask: torch.Tensor,
    agg: str = "token_mean",
    normalizer: Optional[float] = None,
) -> torch.Tensor:
    """Entropy over valid response tokens, aggregated like the policy loss: aggregate_loss(H, mask, agg,
    normalizer). With the default ``token_mean`` and no normalizer this is Σ m·H / Σ m. For an entropy bonus
    the loop subtracts ``coef`` times it from the loss, with the step normaliser."""
    return aggregate_loss(entropy, mask, agg, normalizer)
