"""Token entropy and token log-probabilities from logits, computed in float32 and in row chunks.

Chunking bounds the float32 temporaries to ``chunk_size × V`` (a 152k-token vocabulary at 8k tokens would
otherwise need several GB for one softmax). Both functions stay differentiable (an entropy bonus needs
the gradient); wrap them in ``torch.no_grad()`` for metrics.
"""
from __future__ import annotations

from typing import Optional

import torch

from .losses import aggregate_loss


def _row_chunks(n: int, chunk_size: Optional[int]):
    step = n if not chunk_size or chunk_size <= 0 else chunk_size
    for start in range(0, n, max(step, 1)):
        yield start, min(start + step, n)


def entropy_from_logits(logits: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
    """H = −Σ_v p_v log p_v = logsumexp(z) − Σ_v p_v · z_v, p = softmax(z), over the last dimension.

    Stable for large logits (computed on z − max z) and for −inf logits (masked vocabulary entries, whose
    p = 0 contribute 0 instead of 0·(−inf) = NaN). ``logits`` [..., V] → entropy [...] in float32.
    ``chunk_size`` = rows (positions) per chunk; None = all at once.
    """
    flat = logits.reshape(-1, logits.size(-1))
    out = []
    for a, b in _row_chunks(flat.size(0), chunk_size):
        z = flat[a:b].float()
        # Shift by the row max: H is shift-invariant, and without it logsumexp(z) − Σ p·z cancels two large
        # numbers (at |z| ≈ 1000 float32 loses ~1e-4).
        z = z - z.max(dim=-1, keepdim=True).values.detach()
        p = torch.softmax(z, dim=-1)
        pz = torch.where(p > 0, p * z, torch.zeros_like(z))
        out.append(torch.logsumexp(z, dim=-1) - pz.sum(dim=-1))
    ent = torch.cat(out) if out else flat.new_zeros(0, dtype=torch.float32)
    return ent.view(logits.shape[:-1])


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, chunk_size: Optional[int] = None) -> torch.Tensor:
    """log p(y) = z_y − logsumexp(z) for each position: ``logits`` [..., V], ``labels`` [...] → [...] float32.

    (The caller aligns logits and labels: the logits at position t score the token at t+1.)
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not align")
    flat = logits.reshape(-1, logits.size(-1))
    flat_labels = labels.reshape(-1)
    out = []
    for a, b in _row_chunks(flat.size(0), chunk_size):
        z = flat[a:b].float()
        z = z - z.max(dim=-1, keepdim=True).values.detach()  # same shift as above: no large-number cancellation
        picked = z.gather(-1, flat_labels[a:b].unsqueeze(-1)).squeeze(-1)
        out.append(picked - torch.logsumexp(z, dim=-1))
    lp = torch.cat(out) if out else flat.new_zeros(0, dtype=torch.float32)
    return lp.view(labels.shape)


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
