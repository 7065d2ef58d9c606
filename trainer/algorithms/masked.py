"""Masked reductions over token tensors.

All token-level tensors are ``[B, T]`` over the response tokens, with ``mask`` ``[B, T]`` (bool or float, 1 for a
real response token, 0 for padding). Padding never contributes to a sum, mean or variance, and helpers that
return token tensors write 0 at padded positions so garbage cannot leak into a later sum.
"""
from __future__ import annotations

from typing import Optional

import torch


def _as_float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match tensor shape {tuple(like.shape)}")
    dtype = like.dtype if like.is_floating_point() else torch.float32
    return mask.to(dtype)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """Σ x·m over ``dim`` (all elements when ``dim`` is None)."""
    m = _as_float_mask(mask, x)
    xm = torch.where(m != 0, x * m, torch.zeros_like(x * m))  # inf/NaN in the padding stays out (NaN·0 = NaN)
    return xm.sum() if dim is None else xm.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: Optional[int] = None) -> torch.Tensor:
    """Σ x·m / Σ m over ``dim``.

    Where Σ m = 0 (an all-padding row, or an all-padding batch) the mean is defined as 0, not NaN: the count is
    clamped to at least 1 and the numerator is already 0.
    """
    m = _as_float_mask(mask, x)
    count = m.sum() if dim is None else m.sum(dim=dim)
    return masked_sum(x, m, dim) / count.clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the valid elements of ``x`` (over all dimensions).

    var = Σ m·(x − μ)² / (n − 1)  with μ = masked_mean(x), n = Σ m   (unbiased, Bessel's correction; the
    convention of OpenRLHF's and verl's ``masked_var``),  or  / n  when ``unbiased=False``.
    With n ≤ 1 (n = 0 for ``unbiased=False``) the variance is undefined and 0 is returned.
    """
    m = _as_float_mask(mask, x)
    n = m.sum()
    mean = masked_mean(x, m)
    sq = masked_sum((x - mean) ** 2, m)
    denom = n - 1.0 if unbiased else n
    # torch.where instead of an ``if``: no host-device sync on GPU.
    return torch.where(denom > 0, sq / denom.clamp(min=1.0), torch.zeros_like(sq))


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Whiten the valid elements of ``x`` over the whole tensor (all rows and tokens together).

    w = (x − μ) / sqrt(var + eps)        (``shift_mean=True``)
    w = x / sqrt(var + eps)              (``shift_mean=False``: rescale only, keep the mean)
    with μ, var = masked_mean, masked_var (unbiased). Padded positions are 0 in the output.
    A single valid element (var undefined → 0) gives 0 with ``shift_mean`` and x/sqrt(eps) without it.
    """
    m = _as_float_mask(mask, x)
    mean = masked_mean(x, m)
    var = masked_var(x, m)
    w = (x - mean) if shift_mean else x
    return torch.where(m != 0, w * torch.rsqrt(var + eps) * m, torch.zeros_like(w))
