"""Rollout/trainer log-probability mismatch: truncated importance sampling (TIS) and its metrics.

The rollout engine (vLLM) and the trainer (HF forward) compute slightly different log-probs for the same
tokens (different kernels, batch shapes, precision). The samples come from the rollout policy π_rollout but
PPO's old policy is the trainer's π_old, so each token's loss can be reweighted by π_old/π_rollout, truncated
at a cap to bound the variance (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy
RL training"). Pass the weights to ``policy_loss(..., weights=...)``.
"""
from __future__ import annotations

from typing import Dict

import torch

from .masked import masked_mean


@torch.no_grad()
def tis_weights(
    trainer_old_logprobs: torch.Tensor,
    rollout_logprobs: torch.Tensor,
    mask: torch.Tensor,
    cap: float = 2.0,
) -> torch.Tensor:
    """w_t = min(exp(logπ_old − logπ_rollout), cap) · m_t, detached (0 at padded positions).

    The log-ratio is clamped at 20 before exp, so a token the rollout found nearly impossible gives w = cap,
    not inf."""
    if not cap > 0:
        raise ValueError(f"TIS cap must be > 0, got {cap}")
    if not (trainer_old_logprobs.shape == rollout_logprobs.shape == mask.shape):
        raise ValueError("trainer_old_logprobs, rollout_logprobs and mask must have the same [B, T] shape")
    log_ratio = (trainer_old_logprobs.float() - rollout_logprobs.float()).clamp(max=20.0)
    return torch.exp(log_ratio).clamp(max=cap) * mask.float()


@torch.no_grad()
def logprob_mismatch_stats(
    trainer_logprobs: torch.Tensor,
    rollout_logprobs: torch.Tensor,
    mask: torch.Tensor,
) -> Dict[str, torch.Tensor]:
    """Mismatch metrics over valid tokens (detached 0-dim tensors), with d_t = logπ_trainer − logπ_rollout:

    - ``max_abs_diff`` = max |d_t|   (0 when no valid token)
    - ``mean_abs_diff`` = mean |d_t|
    - ``k3_kl`` = mean(exp(d_t) − 1 − d_t): k3 estimate of KL(π_rollout ‖ π_trainer) from tokens sampled by
      the rollout (≥ 0; the figure the slime/Miles mismatch study reports, ~1e-5..1e-3 for dense models).
    """
    if not (trainer_logprobs.shape == rollout_logprobs.shape == mask.shape):
        raise ValueError("trainer_logprobs, rollout_logprobs and mask must have the same [B, T] shape")
    m = mask.float()
    d = (trainer_logprobs.float() - rollout_logprobs.float()).clamp(-20.0, 20.0)
    abs_d = d.abs() * m
    return {
        "max_abs_diff": abs_d.max() if abs_d.numel() else abs_d.new_zeros(()),
        "mean_abs_diff": masked_mean(d.abs(), m),
        "k3_kl": masked_mean(torch.exp(d) - 1.0 - d, m),
    }
