"""Hand-checked tests for DAPO dynamic sampling / overlong handling and the rollout-trainer mismatch helpers."""
import math

import pytest
import torch

from trainer.algorithms import (
    filter_uniform_groups,
    logprob_mismatch_stats,
    overlong_filter_mask,
    overlong_reward_shaping,
    tis_weights,
)


def close(a, b, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                               atol=atol, rtol=0)


def test_filter_uniform_groups():
    # groups of 3: all-correct (drop), mixed (keep), all-wrong (drop)
    r = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    keep = filter_uniform_groups(r, 3)
    assert keep.dtype == torch.bool
    assert keep.tolist() == [False] * 3 + [True] * 3 + [False] * 3
    assert keep.view(-1, 3)[:, 0].tolist() == [False, True, False]
    # group of one is always uniform
    assert filter_uniform_groups(torch.tensor([0.0, 1.0]), 1).tolist() == [False, False]
    # float rewards: exact inequality by default, a tolerance on request
    near = torch.tensor([0.5, 0.5 + 1e-7])
    assert filter_uniform_groups(near, 2).tolist() == [True, True]
    assert filter_uniform_groups(near, 2, tol=1e-6).tolist() == [False, False]
    with pytest.raises(ValueError):
        filter_uniform_groups(torch.ones(5), 2)
    with pytest.raises(ValueError):
        filter_uniform_groups(torch.tensor([1.0, float("nan")]), 2)


def test_overlong_filter_mask():
    truncated = torch.tensor([False, True, False])
    assert overlong_filter_mask(truncated).tolist() == [True, False, True]
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    out = overlong_filter_mask(truncated, mask)
    close(out, [[1, 1], [0, 0], [1, 0]])
    assert out.dtype == mask.dtype
    with pytest.raises(ValueError):
        overlong_filter_mask(truncated, torch.ones(2, 2))


def test_overlong_reward_shaping():
    # L_max = 20, L_cache = 4: no penalty up to 16, then (16 - L)/4, -1 beyond 20
    lengths = torch.tensor([10, 16, 17, 18, 20, 21])
    close(overlong_reward_shaping(lengths, 20, 4), [0.0, 0.0, -0.25, -0.5, -1.0, -1.0])
    close(overlong_reward_shaping(lengths, 20, 4, penalty_factor=0.5), [0.0, 0.0, -0.125, -0.25, -0.5, -0.5])
    with pytest.raises(ValueError):
        overlong_reward_shaping(lengths, 20, 0)
    with pytest.raises(ValueError):
        overlong_reward_shaping(lengths, 20, 21)


def test_tis_weights():
    # exp(old - rollout) = 1.5, 3 -> capped at 2, 0.5; padded position -> 0
    old = torch.log(torch.tensor([[1.5, 3.0, 0.5, 7.0]]))
    rollout = torch.zeros(1, 4, requires_grad=True)
    w = tis_weights(old, rollout, torch.tensor([[1, 1, 1, 0]]), cap=2.0)
    close(w, [[1.5, 2.0, 0.5, 0.0]])
    assert not w.requires_grad
    assert torch.isfinite(tis_weights(torch.tensor([[0.0]]), torch.tensor([[-1e4]]), torch.ones(1, 1), 2.0)).all()
    with pytest.raises(ValueError):
        tis_weights(old, rollout, torch.ones(1, 4), cap=0.0)


def test_logprob_mismatch_stats():
    # d = trainer - rollout = [0.1, -0.2, (padded 5.0)]
    trainer = torch.tensor([[0.1, -0.2, 5.0]])
    rollout = torch.zeros(1, 3)
    stats = logprob_mismatch_stats(trainer, rollout, torch.tensor([[1, 1, 0]]))
    close(stats["max_abs_diff"], 0.2)
    close(stats["mean_abs_diff"], 0.15)
    # k3 = mean(e^d - 1 - d) = mean(0.0051709, 0.0187308)
    close(stats["k3_kl"], ((math.exp(0.1) - 1.1) + (math.exp(-0.2) - 0.8)) / 2)
    same = logprob_mismatch_stats(trainer, trainer, torch.ones(1, 3))
    close(same["max_abs_diff"], 0.0)
    close(same["k3_kl"], 0.0)


def test_neutral_rewards_by_hand():
    from trainer.algorithms import neutral_rewards

    r = torch.tensor([1.0, -0.5, 0.0, -1.0, 1.0, 1.0])
    drop = torch.tensor([False, True, False, True, True, True])
    # group 1 (1, [-0.5], 0): the dropped one gets mean(1, 0) = 0.5; group 2 all dropped -> 0
    assert torch.equal(neutral_rewards(r, drop, 3), torch.tensor([1.0, 0.5, 0.0, 0.0, 0.0, 0.0]))
    assert torch.equal(neutral_rewards(r, torch.zeros(6, dtype=torch.bool), 3), r)
    with pytest.raises(ValueError, match="whole number of groups"):
        neutral_rewards(r, drop, 4)
