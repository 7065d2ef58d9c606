"""The RL algorithm core as pure tensor functions (no models, no distribution, no I/O).

Conventions: token tensors are ``[B, T]`` over response tokens with a ``mask`` ``[B, T]`` (1 = real token);
sequence rewards are ``[B]``; a prompt's ``group_size`` samples are contiguous (``rewards.view(-1, G)``).

One step of the loop, in these functions:

    r_tok = token_level_rewards(rewards, mask)                        # scalar reward on the last token
    r_tok = apply_kl_to_rewards(r_tok, kl_estimate(old_lp, ref_lp, "k1"), beta, mask)   # if KL in reward
    adv, ret = gae_advantages_and_returns(r_tok, values, mask, gamma, lam)              # PPO
    adv = broadcast_to_tokens(group_advantages(rewards, G, "grpo"), mask)               # GRPO family
    adv, ret = reinforce_pp_advantages(r_tok, mask, gamma)                              # REINFORCE++
    N = loss_normalizer(minibatch_mask, agg)                          # once per optimizer step
    for micro-batch:                                                  # gradient accumulation: just sum
        loss, stats = policy_loss(lp, old_lp, adv, mask, clip_low, clip_high, dual_clip, agg, N)
        loss = loss + beta * kl_loss(lp, ref_lp, mask, "k3", agg, N)                     # if KL in loss
        if ratio_early_stop(lp, old_lp, mask, threshold): loss = loss * 0.0             # RLinf
    # behaviour policy μ (rollout, maybe stale) vs proximal π_old: w = off_policy_weights(kind, old_lp, μ_lp,
    # mask, C) passed as policy_loss(..., weights=w) is the decoupled PPO objective (offpolicy.py)
"""
from .advantages import (
    GROUP_METHODS,
    broadcast_to_tokens,
    discounted_returns,
    gae_advantages_and_returns,
    group_advantages,
    reinforce_pp_advantages,
    token_level_rewards,
)
from .entropy import entropy_from_logits, logprobs_from_logits, masked_entropy_mean
from .kl import KL_KINDS, apply_kl_to_rewards, kl_estimate, kl_loss
from .losses import (
    AGG_MODES,
    aggregate_loss,
    explained_variance,
    loss_normalizer,
    policy_loss,
    ratio_early_stop,
    value_loss,
)
from .masked import masked_mean, masked_sum, masked_var, masked_whiten
from .mismatch import logprob_mismatch_stats, tis_weights
from .offpolicy import (OFF_POLICY_CORRECTIONS, decoupled_ppo_loss, icepop_weights, masked_sequence_weights,
                        masked_token_weights, off_policy_weights, sequence_tis_weights)
from .sampling import filter_uniform_groups, neutral_rewards, overlong_filter_mask, overlong_reward_shaping

__all__ = [
    "AGG_MODES",
    "OFF_POLICY_CORRECTIONS",
    "GROUP_METHODS",
    "KL_KINDS",
    "aggregate_loss",
    "apply_kl_to_rewards",
    "broadcast_to_tokens",
    "decoupled_ppo_loss",
    "discounted_returns",
    "entropy_from_logits",
    "explained_variance",
    "filter_uniform_groups",
    "gae_advantages_and_returns",
    "group_advantages",
    "icepop_weights",
    "kl_estimate",
    "kl_loss",
    "logprob_mismatch_stats",
    "logprobs_from_logits",
    "loss_normalizer",
    "masked_entropy_mean",
    "masked_mean",
    "masked_sequence_weights",
    "masked_sum",
    "masked_token_weights",
    "masked_var",
    "masked_whiten",
    "neutral_rewards",
    "off_policy_weights",
    "overlong_filter_mask",
    "overlong_reward_shaping",
    "policy_loss",
    "ratio_early_stop",
    "reinforce_pp_advantages",
    "sequence_tis_weights",
    "tis_weights",
    "token_level_rewards",
    "value_loss",
]
