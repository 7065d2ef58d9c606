"""KL(π_θ ‖ π_ref) estimators and the two ways of applying them: in the reward or in the loss.

Estimators (Schulman, "Approximating KL divergence", 2020), per sampled token y ~ π_θ, with
log_ratio = logπ_θ(y) − logπ_ref(y):

- k1 = log_ratio                                   unbiased, high variance, can be negative
- k2 = ½ · log_ratio²                              biased, low variance, ≥ 0
- k3 = exp(−log_ratio) − 1 + log_ratio             unbiased, low variance, ≥ 0  (= (r − 1) − log r with
                                                   r = π_ref/π_θ; GRPO's and TRL's KL term, verl's "low_var_kl")

In the reward (``kl_in_reward``, PPO / REINFORCE++): r_t ← r_t − β·KL_t, computed once from the rollout's
log-probs, no gradient. In the loss (``kl_in_loss``, GRPO): loss ← loss + β·aggregate(KL_t), differentiated.
As a loss, k1 has zero expected gradient on-policy (E_π[∇ log π] = 0); use k3 (GRPO) or k2, whose gradient
is that of the true reverse KL on-policy.
"""
from __future__ import annotations

from typing import Optional

import torch

from .losses import aggregate_loss

KL_KINDS = ("k1", "k2", "k3")


def kl_estimate(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    kind: str = "k3",
    clamp: Optional[float] = None,
) -> torch.Tensor:
    """Per-token KL estimate (see the module docstring for the formulas of ``k1``, ``k2``, ``k3``).

    ``clamp`` (optional, > 0) bounds log_ratio to [−clamp, clamp] before the estimator, so a token the
    reference finds nearly impossible cannot overflow exp() in k3 (the gradient is 0 beyond the bound).
    Padded positions are not masked here: the caller masks or aggregates with the mask.
    """
    if kind not in KL_KINDS:
        raise ValueError(f"unknown KL estimator {kind!r}; choose one of {KL_KINDS}")
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and ref_logprobs {tuple(ref_logprobs.shape)} differ")
    log_ratio = logprobs.float() - ref_logprobs.float()
    if clamp is not None:
        if not clamp > 0:
            raise ValueError(f"KL clamp must be > 0, got {clamp}")
        log_ratio = log_ratio.clamp(-clamp, clamp)
    if kind == "k1":
        return log_ratio
    if kind == "k2":
        return 0.5 * log_ratio ** 2
    return torch.exp(-log_ratio) - 1.0 + log_ratio


@torch.no_grad()
def apply_kl_to_rewards(
    token_rewards: torch.Tensor,
    kl: torch.Tensor,
    coef: float,
    mask: torch.Tensor,
) -> torch.Tensor:
    """KL in the reward: r'_t = (r_t − β·KL_t) · m_t, with KL_t = ``kl_estimate(old_logprobs, ref_logprobs,
    kind)`` from the rollout, β = ``coef``. The result feeds ``gae_advantages_and_returns`` or
    ``reinforce_pp_advantages``."""
    if not (token_rewards.shape == kl.shape == mask.shape):
        raise ValueError("token_rewards, kl and mask must have the same [B, T] shape")
    m = mask.to(token_rewards.dtype if token_rewards.is_floating_point() else torch.float32)
    return (token_rewards - coef * kl.to(m.dtype)) * m


def kl_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kind: str = "k3",
    agg: str = "token_mean",
    normalizer: Optional[float] = None,
    clamp: Optional[float] = None,
) -> torch.Tensor:
    """KL in the loss: aggregate_loss(kl_estimate(logπ_θ, logπ_ref, kind), mask, agg, normalizer).

    Returned unscaled: the loop adds β times it to the policy loss (and logs it as the KL metric). Use the same
    ``agg``/``normalizer`` as the policy loss so gradient accumulation stays exact.
    """
    # Both log-probs set to 0 at padded positions through where() (log-ratio 0, KL 0), so inf/NaN log-probs in
    # the padding give neither a NaN loss nor a NaN gradient.
    valid = mask.bool()
    logprobs = torch.where(valid, logprobs, torch.zeros_like(logprobs))
    ref = torch.where(valid, ref_logprobs.detach(), torch.zeros_like(ref_logprobs))
    return aggregate_loss(kl_estimate(logprobs, ref, kind, clamp), mask, agg, normalizer)
