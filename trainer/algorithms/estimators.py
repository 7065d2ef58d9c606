"""Advantage estimators by name: each entry says how to compute advantages and what the rest of the run needs.

    ADVANTAGE_ESTIMATORS["gae"]                 PPO with a critic: A = GAE(γ, λ) over token rewards r_t
                                                (scalar reward on the last token − β·KL_t when KL is in the
                                                reward); returns R = A + V; optional batch whitening
    ADVANTAGE_ESTIMATORS["grpo"|"dr_grpo"|"rloo"]  sequence advantage from the group of n samples of a prompt,
                                                the same for every token (KL only as a loss term)
    ADVANTAGE_ESTIMATORS["reinforce_pp"]        REINFORCE++: discounted token returns of (r − β·KL_t),
                                                whitened over the batch
    ADVANTAGE_ESTIMATORS["reinforce_baseline"]  r − group mean as the terminal reward, then REINFORCE++

A new estimator is one :func:`register_advantage_estimator` call plus its test: ``algorithm.advantage``
accepts every registered name, the config checks its requirements (``min_group_size``, ``kl_in_reward``)
and the builder adds a critic when ``needs_critic``. ``compute`` is a pure tensor function of
:class:`AdvantageInputs`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from mathrl_core.registry import Registry

from .advantages import (broadcast_to_tokens, gae_advantages_and_returns, group_advantages,
                         reinforce_pp_advantages, token_level_rewards)
from .kl import apply_kl_to_rewards
from .masked import masked_whiten


@dataclass
class AdvantageInputs:
    """What an estimator may read. Token tensors ``[B, T]``; ``rewards`` ``[B]`` (a prompt's ``group_size``
    samples contiguous); ``kl`` is the per-token KL penalty estimate when KL goes into the reward (else None)."""

    rewards: torch.Tensor
    mask: torch.Tensor
    group_size: int
    gamma: float = 1.0
    lam: float = 0.95
    group_eps: float = 1e-6
    whiten: bool = False
    kl: Optional[torch.Tensor] = None
    kl_coef: float = 0.0
    values: Optional[torch.Tensor] = None


Result = tuple[torch.Tensor, Optional[torch.Tensor]]  # (advantages [B, T], critic returns [B, T] or None)


@dataclass(frozen=True)
class AdvantageEstimator:
    name: str
    compute: Callable[[AdvantageInputs], Result]
    needs_critic: bool = False      # the builder adds a critic worker; ``values`` is set
    min_group_size: int = 1         # rollout.n must be at least this
    kl_in_reward: bool = True       # whether algorithm.kl_mode=reward is meaningful (else KL only as a loss)
    description: str = ""


ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator")


def register_advantage_estimator(estimator: AdvantageEstimator, overwrite: bool = False) -> AdvantageEstimator:
    return ADVANTAGE_ESTIMATORS.add(estimator.name, estimator, overwrite)


def get_estimator(name: str) -> AdvantageEstimator:
    return ADVANTAGE_ESTIMATORS.lookup(name)


def _token_rewards(terminal: torch.Tensor, x: AdvantageInputs) -> torch.Tensor:
    """The terminal reward on the last token, minus β·KL_t per token when KL is in the reward."""
    r = token_level_rewards(terminal, x.mask)
    return r if x.kl is None else apply_kl_to_rewards(r, x.kl, x.kl_coef, x.mask)


def _gae(x: AdvantageInputs) -> Result:
    adv, ret = gae_advantages_and_returns(_token_rewards(x.rewards, x), x.values, x.mask, x.gamma, x.lam)
    return (masked_whiten(adv, x.mask) if x.whiten else adv), ret


def _group(method: str) -> Callable[[AdvantageInputs], Result]:
    def compute(x: AdvantageInputs) -> Result:
        return broadcast_to_tokens(group_advantages(x.rewards, x.group_size, method, eps=x.group_eps), x.mask), None
    return compute


def _reinforce_pp(x: AdvantageInputs) -> Result:
    return reinforce_pp_advantages(_token_rewards(x.rewards, x), x.mask, gamma=x.gamma)[0], None


def _reinforce_baseline(x: AdvantageInputs) -> Result:
    terminal = group_advantages(x.rewards, x.group_size, "reinforce_baseline")
    return reinforce_pp_advantages(_token_rewards(terminal, x), x.mask, gamma=x.gamma)[0], None


for _e in (
    AdvantageEstimator("gae", _gae, needs_critic=True, description="PPO with a critic (GAE)"),
    AdvantageEstimator("grpo", _group("grpo"), min_group_size=2, kl_in_reward=False,
                       description="group-normalised (r - mean) / std"),
    AdvantageEstimator("dr_grpo", _group("dr_grpo"), min_group_size=2, kl_in_reward=False,
                       description="Dr.GRPO: r - group mean"),
    AdvantageEstimator("rloo", _group("rloo"), min_group_size=2, kl_in_reward=False,
                       description="REINFORCE leave-one-out"),
    AdvantageEstimator("reinforce_pp", _reinforce_pp, description="REINFORCE++ (batch-whitened returns)"),
    AdvantageEstimator("reinforce_baseline", _reinforce_baseline, min_group_size=2,
                       description="REINFORCE++ with a group-mean baseline"),
):
    register_advantage_estimator(_e)
