"""Off-policy corrections: the tokens were sampled by a behaviour policy μ (the rollout engine: other kernels,
other precision, and in asynchronous RL weights some policy versions behind), the update is anchored at the
trainer's proximal policy π_prox (PPO's "old" policy: the trainer's weights before this step's update).

Notation (token tensors ``[B, T]``, ``m`` the response mask, C > 0 the cap):

    log ρ_t = log π_prox(a_t|s_t) − log μ(a_t|s_t)        token ratio (log clamped to ±20, 0 at padding)
    log ρ_i = Σ_t m_t · log ρ_t                             sequence ratio = ∏_t ρ_t (log clamped to ±20)

    tis_token   w_t = min(ρ_t, C)                  truncated IS (Yao et al. 2025; ``mismatch.tis_weights``)
    tis_seq     w_t = min(ρ_i, C)                  sequence-level TIS, the same weight on every token of row i
    mis_token   w_t = ρ_t · 1[ρ_t ≤ C]              masked IS: a token whose ratio exceeds C is dropped (AReaL's
                                                   ``behav_imp_weight_cap``)
    mis_seq     w_t = ρ_i · 1[ρ_i ≤ C]              masked IS, sequence level: the whole row is dropped
    icepop      w_t = ρ_t · 1[1/C ≤ ρ_t ≤ C]        IcePop (Ring-1T, 2025): tokens outside the band are dropped

The weights are detached and multiply the per-token PPO loss (``policy_loss(..., weights=w)``). A dropped token
contributes zero loss while the loss normaliser still counts it (IcePop's 1/|o_i| over all of a response's
tokens), so dropping a fraction f of the tokens scales that part of the gradient by (1 − f); verl's rejection
sampling instead removes them from the denominator too.

With the weights, the PPO loss is the decoupled objective (Hilton et al. 2021, "Batch size-invariance for
policy optimization"; AReaL's asynchronous PPO):

    ℓ_t = −w_t · min(r_t·A_t, clip(r_t, 1 − ε_low, 1 + ε_high)·A_t),   r_t = π_θ / π_prox

the trust region is measured against the proximal policy, and w_t (≈ π_prox/μ) corrects for the behaviour policy
that really sampled the data (:func:`decoupled_ppo_loss`). Without a correction the loop uses the same r_t and
w_t = 1, which ignores the gap between μ and π_prox.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from .losses import policy_loss
from .masked import masked_mean
from .mismatch import tis_weights

_LOG_CLAMP = 20.0


def _check(proximal: torch.Tensor, behaviour: torch.Tensor, mask: torch.Tensor, cap: float) -> None:
    if not (proximal.shape == behaviour.shape == mask.shape) or proximal.dim() != 2:
        raise ValueError("proximal_logprobs, behaviour_logprobs and mask must have the same [B, T] shape, got "
                         f"{tuple(proximal.shape)}, {tuple(behaviour.shape)}, {tuple(mask.shape)}")
    if not cap > 0:
        raise ValueError(f"the importance-weight cap must be > 0, got {cap}")


def token_log_ratio(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """log ρ_t = log π_prox − log μ per token, clamped to ±20, 0 at padded positions."""
    d = (proximal_logprobs.float() - behaviour_logprobs.float()).clamp(-_LOG_CLAMP, _LOG_CLAMP)
    return torch.where(mask.bool(), d, torch.zeros_like(d))


def sequence_log_ratio(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """log ρ_i = Σ_t m_t log ρ_t per row ``[B]`` (log of the product of the token ratios), clamped to ±20."""
    return token_log_ratio(proximal_logprobs, behaviour_logprobs, mask).sum(dim=1).clamp(-_LOG_CLAMP, _LOG_CLAMP)


@torch.no_grad()
def sequence_tis_weights(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor,
                         cap: float) -> torch.Tensor:
    """tis_seq: w_t = min(ρ_i, C) on every valid token of row i (0 at padding)."""
    _check(proximal_logprobs, behaviour_logprobs, mask, cap)
    w = torch.exp(sequence_log_ratio(proximal_logprobs, behaviour_logprobs, mask)).clamp(max=cap)
    return w.unsqueeze(1) * mask.float()


@torch.no_grad()
def masked_token_weights(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor,
                         cap: float, low: Optional[float] = None) -> torch.Tensor:
    """mis_token (``low=None``): w_t = ρ_t · 1[ρ_t ≤ C]; with ``low``: w_t = ρ_t · 1[low ≤ ρ_t ≤ C] (IcePop).
    0 at padding."""
    _check(proximal_logprobs, behaviour_logprobs, mask, cap)
    rho = torch.exp(token_log_ratio(proximal_logprobs, behaviour_logprobs, mask))
    keep = rho <= cap
    if low is not None:
        keep = keep & (rho >= low)
    return torch.where(keep & mask.bool(), rho, torch.zeros_like(rho))


@torch.no_grad()
def masked_sequence_weights(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor,
                            cap: float) -> torch.Tensor:
    """mis_seq: w_t = ρ_i · 1[ρ_i ≤ C] on every valid token of row i (0 at padding)."""
    _check(proximal_logprobs, behaviour_logprobs, mask, cap)
    rho = torch.exp(sequence_log_ratio(proximal_logprobs, behaviour_logprobs, mask))
    w = torch.where(rho <= cap, rho, torch.zeros_like(rho))
    return w.unsqueeze(1) * mask.float()


@torch.no_grad()
def icepop_weights(proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor, mask: torch.Tensor,
                   cap: float) -> torch.Tensor:
    """icepop: w_t = ρ_t · 1[1/C ≤ ρ_t ≤ C] (needs C > 1, else the band is empty)."""
    if not cap > 1:
        raise ValueError(f"IcePop's band [1/C, C] needs C > 1, got {cap}")
    return masked_token_weights(proximal_logprobs, behaviour_logprobs, mask, cap, low=1.0 / cap)


# The corrections by name (``algorithm.off_policy_correction``): (weights function, what it does to a token: "token" /
# "sequence" = truncates ρ taken at that level at C, "mask" = drops tokens). A new correction is one entry here.
OFF_POLICY_CORRECTIONS = {
    "tis_token": (tis_weights, "token"),
    "tis_seq": (sequence_tis_weights, "sequence"),
    "mis_token": (masked_token_weights, "mask"),
    "mis_seq": (masked_sequence_weights, "mask"),
    "icepop": (icepop_weights, "mask"),
}


@torch.no_grad()
def off_policy_weights(kind: str, proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor,
                       mask: torch.Tensor, cap: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The weights of correction ``kind`` (one of :data:`OFF_POLICY_CORRECTIONS`) and their statistics over the
    valid tokens (detached 0-dim tensors):

    - ``truncated_frac``: tokens whose weight was cut down to C (tis_*: ρ > C at the correction's level)
    - ``masked_frac``: tokens dropped (weight 0) by a mask (mis_*, icepop)
    - ``weight_mean``: mean weight
    """
    if kind not in OFF_POLICY_CORRECTIONS:
        raise ValueError(f"unknown off-policy correction {kind!r}; one of {tuple(OFF_POLICY_CORRECTIONS)}")
    _check(proximal_logprobs, behaviour_logprobs, mask, cap)
    m = mask.float()
    weights_fn, level = OFF_POLICY_CORRECTIONS[kind]
    w = weights_fn(proximal_logprobs, behaviour_logprobs, mask, cap)
    zero = m.new_zeros(())
    if level == "mask":  # a mask drops tokens (weight 0)
        truncated, masked = zero, masked_mean((w == 0).float(), m)
    else:  # a truncation cuts ρ > C down to C, ρ taken at the correction's level (token or sequence)
        log_ratio = (token_log_ratio(proximal_logprobs, behaviour_logprobs, mask) if level == "token" else
                     sequence_log_ratio(proximal_logprobs, behaviour_logprobs, mask).unsqueeze(1).expand_as(m))
        truncated, masked = masked_mean((torch.exp(log_ratio) > cap).float(), m), zero
    return w, {"truncated_frac": truncated, "masked_frac": masked, "weight_mean": masked_mean(w, m)}


def decoupled_ppo_loss(logprobs: torch.Tensor, proximal_logprobs: torch.Tensor, behaviour_logprobs: torch.Tensor,
                       advantages: torch.Tensor, mask: torch.Tensor, *, correction: str = "mis_token",
                       cap: float = 5.0, **ppo) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The decoupled PPO loss (module docstring): ``policy_loss`` with the ratio taken against the proximal
    policy and each token's loss weighted by the behaviour correction ``correction`` with cap ``cap``
    (AReaL's default is ``mis_token`` with its ``behav_imp_weight_cap``). ``ppo``: ``policy_loss``'s clip,
    aggregation and normaliser arguments. Returns (loss, stats): ``policy_loss``'s statistics plus the
    correction's (``truncated_frac``, ``masked_frac``, ``weight_mean``)."""
    w, wstats = off_policy_weights(correction, proximal_logprobs, behaviour_logprobs, mask, cap)
    loss, stats = policy_loss(logprobs, proximal_logprobs, advantages, mask, weights=w, **ppo)
    return loss, {**stats, **wstats}
