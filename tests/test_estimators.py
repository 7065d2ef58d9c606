"""Advantage estimators as registrations: the built-ins match their formulas, the config derives its rules from
the registry, and a new estimator is one ``register_advantage_estimator`` call that a real run then uses."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.algorithms.estimators import (ADVANTAGE_ESTIMATORS, AdvantageEstimator, AdvantageInputs,
                                           register_advantage_estimator)
from trainer.config import AlgorithmConfig, RLConfig, RolloutConfig
from trainer.config_tree import ConfigError

REPO = Path(__file__).resolve().parents[1]
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])


def test_grpo_by_hand():
    # groups (1, 0) and (1, 1): mean 0.5, Bessel std sqrt(0.5); the second group is uniform -> 0
    adv, ret = ADVANTAGE_ESTIMATORS["grpo"].compute(AdvantageInputs(torch.tensor([1.0, 0.0, 1.0, 1.0]), MASK, 2))
    a = 0.5 / (0.5 ** 0.5 + 1e-6)
    assert ret is None
    assert torch.allclose(adv, torch.tensor([[a, a, 0.0], [-a, -a, -a], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))


def test_rloo_and_dr_grpo_by_hand():
    r = torch.tensor([3.0, 1.0, 2.0, 2.0])
    rloo, _ = ADVANTAGE_ESTIMATORS["rloo"].compute(AdvantageInputs(r, MASK, 2))
    dr, _ = ADVANTAGE_ESTIMATORS["dr_grpo"].compute(AdvantageInputs(r, MASK, 2))
    assert torch.allclose(rloo[:, 0], torch.tensor([2.0, -2.0, 0.0, 0.0]))   # r_i - mean of the others
    assert torch.allclose(dr[:, 0], torch.tensor([1.0, -1.0, 0.0, 0.0]))     # r_i - group mean


def test_gae_returns_are_advantages_plus_values():
    values = torch.tensor([[0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    x = AdvantageInputs(torch.tensor([1.0, 0.0, 2.0, -1.0]), MASK, 1, gamma=1.0, lam=1.0, values=values)
    adv, ret = ADVANTAGE_ESTIMATORS["gae"].compute(x)
    # gamma = lam = 1: A_t = R - V_t with R the terminal reward (row 0: 1 - 0.5, 1 - 0.25)
    assert torch.allclose(adv[0, :2], torch.tensor([0.5, 0.75])) and torch.allclose(adv[2, 0], torch.tensor(1.0))
    assert torch.allclose((ret - adv) * MASK, values * MASK)


def test_config_rules_come_from_the_registry():
    assert RLConfig(algorithm=AlgorithmConfig(advantage="gae")).uses_critic
    assert not RLConfig().uses_critic
    with pytest.raises(ConfigError, match="needs n >= 2"):
        RLConfig(rollout=RolloutConfig(n=1, prompts_per_step=64))
    with pytest.raises(ConfigError, match="kl_mode"):
        RLConfig(algorithm=AlgorithmConfig(advantage="rloo", kl_coef=0.1, kl_mode="reward"))
    with pytest.raises(ConfigError, match="algorithm.advantage"):
        RLConfig(algorithm=AlgorithmConfig(advantage="mean_baseline_test"))


def _mean_baseline(x: AdvantageInputs):
    """A = r - mean(r) over the whole batch, on every real token."""
    return (x.rewards - x.rewards.mean()).unsqueeze(1) * x.mask, None


@pytest.mark.slow
@pytest.mark.usefixtures("single_thread")
def test_a_registered_estimator_is_one_registration_and_trains(tiny_model_dir, tmp_path):
    from reward_service.client import start_service
    from trainer.build import build_run
    from trainer.config_tree import load_config
    from trainer.tracking import read_metrics

    register_advantage_estimator(AdvantageEstimator("mean_baseline_test", _mean_baseline, min_group_size=1))
    svc = start_service(workers=1)
    try:
        adv, _ = ADVANTAGE_ESTIMATORS["mean_baseline_test"].compute(
            AdvantageInputs(torch.tensor([1.0, 0.0, 1.0, 1.0]), MASK, 2))
        assert torch.allclose(adv[:, 0], torch.tensor([0.25, -0.75, 0.25, 0.25]))
        cfg = load_config(RLConfig, REPO / "recipes/tiny_cpu_grpo.yaml", [
            f"model.pretrain={tiny_model_dir}", "model.tiny=null", f"logging.output_dir={tmp_path}",
            f"reward.url={svc.url}", "logging.progress_bar=false", "logging.tensorboard=false",
            "algorithm.advantage=mean_baseline_test", "rollout.n=1", "rollout.prompts_per_step=4",
            "train.minibatch_size=4", "train.micro_batch_size=4", "rollout.max_new_tokens=8",
            "data.synthetic.n=16", "train.total_steps=1"])
        loop = build_run(cfg)
        loop.run()
        loop.tracker.close()
        row = read_metrics(tmp_path)[0]
        assert row["step"] == 1 and "policy/pg_loss" in row
    finally:
        svc.stop()
        ADVANTAGE_ESTIMATORS.pop("mean_baseline_test")
