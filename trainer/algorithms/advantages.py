"""Advantage estimators: GAE for PPO with a critic, group baselines for the GRPO family, REINFORCE++.

Shapes: token tensors ``[B, T]`` over response tokens with ``mask`` ``[B, T]`` (1 = real token); sequence rewards
``[B]``. For group methods the batch is ordered so that each prompt's ``group_size`` samples are contiguous:
``rewards.view(-1, group_size)`` has one prompt per row.

Everything here runs under ``torch.no_grad()``: advantages and returns are targets, never differentiated.
"""
from __future__ import annotations

from typing import Tuple

import torch

from .masked import masked_whiten

GROUP_METHODS = ("grpo", "dr_grpo", "rloo", "reinforce_baseline")


def _check_token_args(mask: torch.Tensor, *tensors: torch.Tensor) -> None:
    if mask.dim() != 2:
        raise ValueError(f"mask must be [B, T], got shape {tuple(mask.shape)}")
    for t in tensors:
        if t.shape != mask.shape:
            raise ValueError(f"token tensor shape {tuple(t.shape)} does not match mask shape {tuple(mask.shape)}")


def _zero_padding(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x at valid positions, 0 at padded ones (where(), so inf/NaN padding does not become NaN as with x·m)."""
    return torch.where(m != 0, x, torch.zeros_like(x))


@torch.no_grad()
def token_level_rewards(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Place each sequence's scalar reward on its last real response token.

    out[i, t] = rewards[i]  if t = max{t' : mask[i, t'] = 1}  else 0.
    A row with no real token gets no reward (there is no action to credit).
    """
    _check_token_args(mask)
    if rewards.shape != mask.shape[:1]:
        raise ValueError(f"rewards must be [B]={mask.shape[0]}, got shape {tuple(rewards.shape)}")
    m = mask.bool()
    positions = torch.arange(m.size(1), device=m.device).expand_as(m)
    last = torch.where(m, positions, torch.full_like(positions, -1)).max(dim=1).values  # -1 for empty rows
    out = torch.zeros(m.shape, dtype=rewards.dtype if rewards.is_floating_point() else torch.float32,
                      device=rewards.device)
    has_token = last >= 0
    rows = torch.arange(m.size(0), device=m.device)[has_token]
    out[rows, last[has_token]] = rewards[has_token].to(out.dtype)
    return out


@torch.no_grad()
def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Reward-to-go over the valid tokens of each row.

    G_t = r_t + γ·G_{t+1}, i.e. G_t = Σ_{k ≥ t} γ^{k−t} · r_k for a right-padded row. "t+1" is the next *valid*
    token: padded positions neither add reward nor count as a step, and are 0 in the output.
    """
    _check_token_args(mask, token_rewards)
    m = mask.to(token_rewards.dtype)
    r = _zero_padding(token_rewards, m)
    running = torch.zeros_like(r[:, 0])
    out = torch.zeros_like(r)
    for t in reversed(range(r.size(1))):
        new = r[:, t] + gamma * running
        running = m[:, t] * new + (1.0 - m[:, t]) * running  # carry across padded positions unchanged
        out[:, t] = running
    return out * m


@torch.no_grad()
def gae_advantages_and_returns(
    token_rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016) over response tokens.

    δ_t = r_t + γ·V_{t+1} − V_t,   A_t = δ_t + γ·λ·A_{t+1},   R_t = A_t + V_t  (the critic's target).
    ``token_rewards`` holds the scalar reward on the last real token (``token_level_rewards``) plus, when KL is
    in the reward, −β·KL_t on every token (``apply_kl_to_rewards``). The step after the last real token is
    terminal: V = 0, A = 0. "t+1" means the next *valid* token, so right padding (or any padded hole) is skipped.
    Advantages and returns are 0 at padded positions. No whitening here: call ``masked_whiten`` if wanted.
    """
    _check_token_args(mask, token_rewards, values)
    m = mask.to(values.dtype)
    r = _zero_padding(token_rewards.to(values.dtype), m)
    v = _zero_padding(values, m)
    next_value = torch.zeros_like(v[:, 0])
    next_adv = torch.zeros_like(v[:, 0])
    advantages = torch.zeros_like(v)
    for t in reversed(range(v.size(1))):
        delta = r[:, t] + gamma * next_value - v[:, t]
        adv = delta + gamma * lam * next_adv
        # On a padded position keep the carries of the next valid token unchanged.
        next_adv = m[:, t] * adv + (1.0 - m[:, t]) * next_adv
        next_value = m[:, t] * v[:, t] + (1.0 - m[:, t]) * next_value
        advantages[:, t] = next_adv
    advantages = advantages * m
    returns = (advantages + v) * m
    return advantages, returns


@torch.no_grad()
def group_advantages(rewards: torch.Tensor, group_size: int, method: str = "grpo", eps: float = 1e-6) -> torch.Tensor:
    """Sequence-level advantages from a per-prompt group baseline. ``rewards`` [B], B = n_prompts · group_size.

    With r the rewards of one group of G samples, r̄ their mean:

    - ``grpo``:  A_i = (r_i − r̄) / (σ + eps), σ = sqrt(Σ_j (r_j − r̄)² / (G − 1)), the *unbiased* (Bessel) std,
      as in TRL's GRPOTrainer (``nanstd``), OpenRLHF's ``group_norm`` and verl (``torch.std``). For G = 1 the
      std is undefined: σ := 0, so A = 0 (r_i − r̄ = 0 anyway). A group with all rewards equal gives A = 0.
    - ``dr_grpo``:  A_i = r_i − r̄  (Dr.GRPO, Liu et al. 2025: no std division, which biases towards
      too-easy/too-hard questions).
    - ``rloo``:  A_i = r_i − (1/(G−1)) Σ_{j≠i} r_j = G/(G−1) · (r_i − r̄)  (REINFORCE leave-one-out,
      Ahmadian et al. 2024). Needs G ≥ 2.
    - ``reinforce_baseline``:  A_i = r_i − r̄ (same numbers as ``dr_grpo`` at this stage). OpenRLHF's
      REINFORCE++-baseline then turns this into token-level returns (minus per-token KL when KL is in the reward)
      and whitens them over the whole batch; that second stage is ``reinforce_pp_advantages``:
      ``reinforce_pp_advantages(apply_kl_to_rewards(token_level_rewards(group_advantages(r, G,
      "reinforce_baseline"), mask), kl, beta, mask), mask)``. This function does not whiten.

    Returns A [B] (float). Use ``broadcast_to_tokens`` to get [B, T].
    """
    if method not in GROUP_METHODS:
        raise ValueError(f"unknown group advantage method {method!r}; choose one of {GROUP_METHODS}")
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be [B], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(f"batch of {rewards.numel()} rewards is not a whole number of groups of {group_size}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf; refusing to compute advantages from them")
    r = rewards.float().view(-1, group_size)
    mean = r.mean(dim=1, keepdim=True)
    centred = r - mean
    if method == "grpo":
        if group_size > 1:
            std = (centred.pow(2).sum(dim=1, keepdim=True) / (group_size - 1)).sqrt()
        else:
            std = torch.zeros_like(mean)
        adv = centred / (std + eps)
    elif method in ("dr_grpo", "reinforce_baseline"):
        adv = centred
    else:  # rloo
        if group_size < 2:
            raise ValueError("rloo needs group_size >= 2 (the leave-one-out baseline of a single sample is undefined)")
        adv = centred * (group_size / (group_size - 1))
    return adv.view(-1)


def broadcast_to_tokens(seq_values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """out[i, t] = seq_values[i] · mask[i, t]: a sequence-level advantage given to every real token."""
    _check_token_args(mask)
    if seq_values.shape != mask.shape[:1]:
        raise ValueError(f"expected [B]={mask.shape[0]} values, got shape {tuple(seq_values.shape)}")
    dtype = seq_values.dtype if seq_values.is_floating_point() else torch.float32
    return seq_values.to(dtype).unsqueeze(1) * mask.to(dtype)


@torch.no_grad()
def reinforce_pp_advantages(
    token_rewards: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    eps: float = 1e-8,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """REINFORCE++ (Hu 2025): token-level return, whitened over every valid token of the batch.

    G_t = Σ_{k ≥ t} γ^{k−t} · r_k  with r_k = [k = last] · r − β·KL_k  (build ``token_rewards`` with
    ``token_level_rewards`` and ``apply_kl_to_rewards``),
    A_t = (G_t − μ) / sqrt(σ² + eps),  μ, σ² = mean and unbiased variance of G over all valid tokens of all rows.
    Call it on the whole rollout batch of the step, not per micro-batch (the statistics are batch-wide).
    Returns (advantages, returns), both 0 at padded positions.
    """
    returns = discounted_returns(token_rewards, mask, gamma)
    return masked_whiten(returns, mask, eps=eps), returns
