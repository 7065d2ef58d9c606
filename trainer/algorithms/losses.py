"""PPO policy and value losses, loss aggregation modes, the ratio early-stop and explained variance.

Aggregation and gradient accumulation
-------------------------------------
A training step (one optimizer update) sees a minibatch that the loop may split into micro-batches for memory.
Every loss here is ``Σ(token losses) / normalizer``; the loop computes ``normalizer`` once for the whole step
with ``loss_normalizer`` and passes it to every micro-batch, then simply *sums* the micro-batch losses (calls
``backward`` on each, no division by the number of micro-batches). That gives exactly the loss and gradient
of one big batch, whatever the split. Without ``normalizer`` each call normalises by its own tensors, which is
right for a single batch only.

With data parallelism (DDP / DeepSpeed average gradients over ranks) pass ``normalizer = global_count /
world_size``, where ``global_count`` is ``loss_normalizer`` summed over ranks (all-reduce).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from .masked import masked_mean, masked_var

AGG_MODES = ("token_mean", "seq_mean_token_mean", "seq_sum")

# Log-ratios are clamped to ±20 before exp (e^20 ≈ 4.9e8) so that a wildly off-policy token gives a large but
# finite ratio instead of inf/NaN; verl does the same.
_LOG_RATIO_CLAMP = 20.0


def _check_agg(agg: str) -> None:
    if agg not in AGG_MODES:
        raise ValueError(f"unknown loss aggregation {agg!r}; choose one of {AGG_MODES}")


def loss_normalizer(
    masks: Union[torch.Tensor, Sequence[torch.Tensor]],
    agg: str = "token_mean",
    max_response_len: Optional[int] = None,
) -> float:
    """The denominator of ``aggregate_loss`` for a whole step, from its mask(s) (one tensor, or a list of the
    micro-batch masks, which may differ in T).

    - ``token_mean``:  N = Σ mask                       (number of valid tokens in the step; DAPO / RLinf)
    - ``seq_mean_token_mean``:  N = #{i : Σ_t mask[i,t] > 0}  (number of sequences with at least one token)
    - ``seq_sum``:  N = (number of sequences) · L        (Dr.GRPO constant; L = ``max_response_len``, the
      generation budget max_new_tokens; defaults to the largest T among the masks, which is the budget only if
      some response reached it, so pass it)
    """
    _check_agg(agg)
    mask_list = [masks] if isinstance(masks, torch.Tensor) else list(masks)
    if not mask_list:
        raise ValueError("loss_normalizer needs at least one mask")
    for m in mask_list:
        if m.dim() != 2:
            raise ValueError(f"masks must be [B, T], got shape {tuple(m.shape)}")
    if agg == "token_mean":
        return float(sum(m.float().sum().item() for m in mask_list))
    if agg == "seq_mean_token_mean":
        return float(sum((m.float().sum(dim=1) > 0).sum().item() for m in mask_list))
    length = max_response_len if max_response_len is not None else max(m.size(1) for m in mask_list)
    return float(sum(m.size(0) for m in mask_list) * length)


def aggregate_loss(
    loss_mat: torch.Tensor,
    mask: torch.Tensor,
    agg: str = "token_mean",
    normalizer: Optional[float] = None,
) -> torch.Tensor:
    """Reduce token losses ``loss_mat`` [B, T] to a scalar.

    - ``token_mean``:  Σ_{i,t} m·ℓ / N,  N = valid tokens in the step (DAPO, RLinf): every token weighs the same,
      long responses are not down-weighted.
    - ``seq_mean_token_mean``:  Σ_i [Σ_t m·ℓ / Σ_t m] / N,  N = sequences in the step (original GRPO / TRL
      ``grpo``): each response weighs the same. Rows without a valid token contribute 0 and are not counted
      in the default N.
    - ``seq_sum``:  Σ_{i,t} m·ℓ / N,  N a constant, by default B·T (Dr.GRPO: number of sequences × generation
      budget), removing the length bias of per-sequence means.

    ``normalizer`` overrides N (see the module docstring for gradient accumulation); it must be > 0. Without it
    N is computed from ``mask`` (clamped to ≥ 1, so an all-padding batch gives 0, not NaN).
    """
    _check_agg(agg)
    if loss_mat.shape != mask.shape or loss_mat.dim() != 2:
        raise ValueError(f"loss [B, T] and mask shapes differ or are not 2-D: {tuple(loss_mat.shape)} vs "
                         f"{tuple(mask.shape)}")
    m = mask.to(loss_mat.dtype)
    # where(), not only a product: an inf/NaN in the padding must not turn the sum into NaN (NaN·0 = NaN).
    weighted = torch.where(m != 0, loss_mat * m, torch.zeros_like(loss_mat))
    if agg == "seq_mean_token_mean":
        lengths = m.sum(dim=1)
        total = (weighted.sum(dim=1) / lengths.clamp(min=1.0)).sum()
        default = (lengths > 0).sum()
    else:
        total = weighted.sum()
        default = m.sum() if agg == "token_mean" else torch.full_like(total, float(m.size(0) * m.size(1)))
    if normalizer is None:
        return total / default.to(total.dtype).clamp(min=1.0)
    if not normalizer > 0:
        raise ValueError(f"loss normalizer must be > 0, got {normalizer}")
    return total / normalizer


def _ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor, valid: torch.Tensor
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(ρ, log ρ) with log ρ clamped to ±20 and set to 0 at padded positions (``valid`` False)."""
    diff = logprobs.float() - old_logprobs.float()
    log_ratio = torch.where(valid, diff, torch.zeros_like(diff)).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    return torch.exp(log_ratio), log_ratio


def _masked_extreme(x: torch.Tensor, mask: torch.Tensor, largest: bool) -> torch.Tensor:
    fill = float("-inf") if largest else float("inf")
    filled = torch.where(mask.bool(), x, torch.full_like(x, fill))
    ext = filled.max() if largest else filled.min()
    return torch.where(mask.bool().any(), ext, torch.ones_like(ext))  # no valid token: neutral 1.0


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: Optional[float] = None,
    agg: str = "token_mean",
    normalizer: Optional[float] = None,
    weights: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """PPO clipped surrogate with clip-higher and optional dual clip.

    ρ_t = exp(logπ_θ − logπ_old)   (log-ratio clamped to ±20),
    ℓ_t = −min(ρ_t·A_t, clip(ρ_t, 1 − ε_low, 1 + ε_high)·A_t)
    (separate ε_low / ε_high: DAPO's clip-higher, e.g. 0.2 / 0.28, lets low-probability tokens grow.)
    Dual clip (Ye et al. 2020), c = ``dual_clip`` > 1, for A_t < 0 only:  ℓ_t = min(ℓ_t, −c·A_t), i.e. the loss
    of a token whose ratio exploded (ρ > c) is capped at c·|A_t|; positive advantages are unchanged.
    ``weights`` [B, T] (optional, detached) multiply ℓ_t per token, e.g. truncated importance-sampling weights
    for the rollout/trainer mismatch (``tis_weights``).
    loss = aggregate_loss(ℓ, mask, agg, normalizer).

    ``advantages`` is [B, T], or [B] (then given to every token). Returns (loss, stats); stats are detached
    0-dim tensors, fractions and ratio statistics over valid tokens (``tokens`` = their count, for weighting
    when averaging over micro-batches):
    clip_frac (= low + high: tokens whose gradient the clip removed), clip_frac_low (A<0, ρ<1−ε_low),
    clip_frac_high (A>0, ρ>1+ε_high), dual_clip_frac (A<0, ρ>c), ratio_mean/max/min (1.0 when no valid
    token), approx_kl = mean((ρ−1) − log ρ) (k3 estimate of KL(π_old‖π_θ)), pg_loss.
    """
    if dual_clip is not None and not dual_clip > 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    if clip_low < 0 or clip_high < 0:
        raise ValueError(f"clip ranges must be >= 0, got low={clip_low} high={clip_high}")
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1).expand_as(mask)
    if not (logprobs.shape == old_logprobs.shape == advantages.shape == mask.shape):
        raise ValueError("logprobs, old_logprobs, advantages and mask must have the same [B, T] shape, got "
                         f"{tuple(logprobs.shape)}, {tuple(old_logprobs.shape)}, {tuple(advantages.shape)}, "
                         f"{tuple(mask.shape)}")
    adv = advantages.detach().float()
    valid = mask.bool()
    # Padded positions get log-ratio 0 through where(): their gradient is exactly 0 even if the model's
    # log-probs there are inf/NaN (a product with a 0 mask would give NaN gradients).
    adv = torch.where(valid, adv, torch.zeros_like(adv))
    ratio, log_ratio = _ratio(logprobs, old_logprobs.detach(), valid)
    surr1 = ratio * adv
    surr2 = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv
    loss_tok = -torch.min(surr1, surr2)
    if dual_clip is not None:
        loss_tok = torch.where(adv < 0, torch.min(loss_tok, -dual_clip * adv), loss_tok)
    if weights is not None:
        w = weights.detach().float()
        loss_tok = loss_tok * torch.where(valid, w, torch.zeros_like(w))
    loss = aggregate_loss(loss_tok, mask, agg, normalizer)

    with torch.no_grad():
        m = mask.float()
        r = ratio.detach()
        low = ((adv < 0) & (r < 1.0 - clip_low)).float()
        high = ((adv > 0) & (r > 1.0 + clip_high)).float()
        dual = ((adv < 0) & (r > dual_clip)).float() if dual_clip is not None else torch.zeros_like(r)
        stats = {
            "pg_loss": loss.detach(),
            "clip_frac": masked_mean(low + high, m),
            "clip_frac_low": masked_mean(low, m),
            "clip_frac_high": masked_mean(high, m),
            "dual_clip_frac": masked_mean(dual, m),
            "ratio_mean": torch.where(m.sum() > 0, masked_mean(r, m), torch.ones_like(m.sum())),
            "ratio_max": _masked_extreme(r, m, largest=True),
            "ratio_min": _masked_extreme(r, m, largest=False),
            "approx_kl": masked_mean((r - 1.0) - log_ratio.detach(), m),
            "tokens": m.sum(),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: Optional[float] = 0.2,
    agg: str = "token_mean",
    normalizer: Optional[float] = None,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Clipped value loss (PPO2 / OpenRLHF).

    V^clip_t = V_old,t + clip(V_t − V_old,t, −c, c),
    ℓ_t = ½ · max((V_t − R_t)², (V^clip_t − R_t)²)   (``clip=None``: ℓ_t = ½ (V_t − R_t)²),
    loss = aggregate_loss(ℓ, mask, agg, normalizer).
    Stats (detached): vf_loss, vf_clip_frac (valid tokens where the clipped term is the larger one, so the
    gradient through V_t is cut), values_mean, tokens.
    """
    if not (values.shape == old_values.shape == returns.shape == mask.shape):
        raise ValueError("values, old_values, returns and mask must have the same [B, T] shape")
    v = values.float()
    ret = returns.detach().float()
    unclipped = (v - ret) ** 2
    if clip is None:
        loss_tok = 0.5 * unclipped
        clipped_active = torch.zeros_like(unclipped)
    else:
        old = old_values.detach().float()
        v_clipped = old + (v - old).clamp(-clip, clip)
        clipped = (v_clipped - ret) ** 2
        loss_tok = 0.5 * torch.max(unclipped, clipped)
        clipped_active = (clipped > unclipped).float()
    loss = aggregate_loss(loss_tok, mask, agg, normalizer)
    with torch.no_grad():
        m = mask.float()
        stats = {
            "vf_loss": loss.detach(),
            "vf_clip_frac": masked_mean(clipped_active.detach(), m),
            "values_mean": masked_mean(v.detach(), m),
            "tokens": m.sum(),
        }
    return loss, stats


@torch.no_grad()
def ratio_early_stop(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
    threshold: Optional[float],
) -> bool:
    """RLinf's importance-ratio early stop: True when this micro-batch should contribute no gradient.

    stop = mean_{valid t} exp(logπ_θ − logπ_old) > threshold.
    As in RLinf (``early_stop_imp_ratio``, default 5.0 in its math configs): the *mean ratio itself* (not
    its deviation from 1) over the valid tokens of the micro-batch, strict ``>``. RLinf then multiplies the
    micro-batch loss by 0 and logs it; the loop does that and counts it. RLinf all-reduces the ratio sum and
    token count over data-parallel ranks first; this function is the local rule (the loop may all-reduce).
    ``threshold=None`` disables it. A micro-batch without valid tokens never stops.
    """
    if threshold is None:
        return False
    ratio, _ = _ratio(logprobs, old_logprobs, mask.bool())
    m = mask.float()
    if m.sum() == 0:
        return False
    return bool(masked_mean(ratio, m) > threshold)


@torch.no_grad()
def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """EV = 1 − Var[R − V] / Var[R] over valid tokens (1: perfect critic, 0: no better than a constant,
    < 0: worse). NaN when Var[R] = 0 (undefined, as in CleanRL)."""
    var_r = masked_var(returns.float(), mask)
    var_diff = masked_var(returns.float() - values.float(), mask)
    return torch.where(var_r > 0, 1.0 - var_diff / var_r.clamp(min=1e-30), torch.full_like(var_r, float("nan")))
