"""Hand-checked tests for masked helpers and advantage estimators (trainer/algorithms)."""
import math

import pytest
import torch

from trainer.algorithms import (
    broadcast_to_tokens,
    discounted_returns,
    gae_advantages_and_returns,
    group_advantages,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    reinforce_pp_advantages,
    token_level_rewards,
)


def close(a, b, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                               atol=atol, rtol=0)


# ---------------------------------------------------------------- masked helpers
X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[1, 1, 0], [1, 0, 0]])  # valid: 1, 2, 4


def test_masked_sum_mean():
    close(masked_sum(X, M), 7.0)
    close(masked_mean(X, M), 7.0 / 3)
    close(masked_mean(X, M, dim=1), [1.5, 4.0])
    close(masked_sum(X, M, dim=1), [3.0, 4.0])


def test_masked_mean_fully_masked_row_is_zero_not_nan():
    m = torch.tensor([[1, 1, 0], [0, 0, 0]])
    close(masked_mean(X, m, dim=1), [1.5, 0.0])
    close(masked_mean(X, torch.zeros_like(m)), 0.0)


def test_masked_var():
    # mean 7/3; deviations -4/3, -1/3, 5/3; squares sum 16/9 + 1/9 + 25/9 = 42/9 = 14/3
    close(masked_var(X, M), (14 / 3) / 2)  # unbiased: / (n - 1) = 7/3
    close(masked_var(X, M, unbiased=False), (14 / 3) / 3)
    close(masked_var(X, torch.tensor([[1, 0, 0], [0, 0, 0]])), 0.0)  # one element: undefined -> 0
    close(masked_var(X, torch.zeros_like(M)), 0.0)


def test_masked_whiten():
    sd = math.sqrt(7 / 3)
    expected = [[(-4 / 3) / sd, (-1 / 3) / sd, 0.0], [(5 / 3) / sd, 0.0, 0.0]]  # padding -> 0
    close(masked_whiten(X, M, eps=0.0), expected)
    w = masked_whiten(X, M)
    close(masked_mean(w, M), 0.0)
    close(masked_var(w, M), 1.0, atol=1e-4)
    # shift_mean=False keeps the mean: x / sd
    close(masked_whiten(X, M, shift_mean=False, eps=0.0), [[1 / sd, 2 / sd, 0], [4 / sd, 0, 0]])


def test_mask_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        masked_mean(X, torch.ones(3, 2))


# ---------------------------------------------------------------- token-level rewards / returns
def test_token_level_rewards_on_last_real_token():
    rewards = torch.tensor([1.0, -0.5, 2.0])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    close(token_level_rewards(rewards, mask), [[0, 0, 1, 0], [-0.5, 0, 0, 0], [0, 0, 0, 0]])


def test_discounted_returns():
    # G2 = 3, G1 = 2 + 0.5*3 = 3.5, G0 = 1 + 0.5*3.5 = 2.75; padded position (reward 7 there) ignored
    r = torch.tensor([[1.0, 2.0, 3.0, 7.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    close(discounted_returns(r, m, gamma=0.5), [[2.75, 3.5, 3.0, 0.0]])
    close(discounted_returns(r, m, gamma=1.0), [[6.0, 5.0, 3.0, 0.0]])


# ---------------------------------------------------------------- GAE
V3 = [0.5, 0.6, 0.7]


def test_gae_gamma1_lambda1_is_return_minus_value():
    r = torch.tensor([[0.0, 0.0, 1.0]])
    v = torch.tensor([V3])
    adv, ret = gae_advantages_and_returns(r, v, torch.ones(1, 3), gamma=1.0, lam=1.0)
    close(adv, [[0.5, 0.4, 0.3]])  # R_t = 1 for all t, A = 1 - V
    close(ret, [[1.0, 1.0, 1.0]])


def test_gae_hand_computed_gamma_lambda():
    # γ=0.9, λ=0.8, γλ=0.72
    # t2: δ=1 + 0 - 0.7 = 0.3                 A2 = 0.3
    # t1: δ=0 + 0.9*0.7 - 0.6 = 0.03           A1 = 0.03 + 0.72*0.3 = 0.246
    # t0: δ=0 + 0.9*0.6 - 0.5 = 0.04           A0 = 0.04 + 0.72*0.246 = 0.21712
    r = torch.tensor([[0.0, 0.0, 1.0]])
    adv, ret = gae_advantages_and_returns(r, torch.tensor([V3]), torch.ones(1, 3), gamma=0.9, lam=0.8)
    close(adv, [[0.21712, 0.246, 0.3]])
    close(ret, [[0.71712, 0.846, 1.0]])


def test_gae_right_padding_and_holes_are_skipped():
    # Row 0: right-padded with garbage values/rewards in the padding; row 1: a padded hole in the middle.
    inf, nan = float("inf"), float("nan")
    r = torch.tensor([[0.0, 0.0, 1.0, 5.0, nan], [0.0, 5.0, 0.0, 1.0, inf]])
    v = torch.tensor([[0.5, 0.6, 0.7, 9.0, inf], [0.5, 9.0, 0.6, 0.7, nan]])
    m = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0]])
    adv, ret = gae_advantages_and_returns(r, v, m, gamma=0.9, lam=0.8)
    close(adv, [[0.21712, 0.246, 0.3, 0, 0], [0.21712, 0, 0.246, 0.3, 0]])
    close(ret, [[0.71712, 0.846, 1.0, 0, 0], [0.71712, 0, 0.846, 1.0, 0]])


def test_gae_with_kl_in_reward():
    # per-token reward -0.1 (KL penalty) plus 1 on the last token; γ=λ=1:
    # returns [0.7, 0.8, 0.9], advantages = returns - V = [0.2, 0.2, 0.2]
    r = torch.tensor([[-0.1, -0.1, 0.9]])
    adv, ret = gae_advantages_and_returns(r, torch.tensor([V3]), torch.ones(1, 3), gamma=1.0, lam=1.0)
    close(ret, [[0.7, 0.8, 0.9]])
    close(adv, [[0.2, 0.2, 0.2]])


def test_gae_fully_masked_row_is_zero():
    adv, ret = gae_advantages_and_returns(torch.ones(1, 3), torch.ones(1, 3), torch.zeros(1, 3), 1.0, 0.95)
    close(adv, [[0, 0, 0]])
    close(ret, [[0, 0, 0]])


# ---------------------------------------------------------------- group advantages
# Group A = [1, 0, 0, 0]: mean 0.25, centred [0.75, -0.25, -0.25, -0.25],
#   unbiased var = (0.5625 + 3*0.0625) / 3 = 0.25 -> std 0.5  (biased std would be 0.433)
# Group B = [1, 1, 1, 1]: all equal -> every method gives 0.
R8 = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])


def test_grpo_uses_unbiased_std():
    close(group_advantages(R8, 4, "grpo"), [1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0])


def test_dr_grpo_no_std():
    close(group_advantages(R8, 4, "dr_grpo"), [0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])


def test_rloo_leave_one_out():
    # r0: 1 - mean(0,0,0) = 1;  r1: 0 - mean(1,0,0) = -1/3
    close(group_advantages(R8, 4, "rloo"), [1.0, -1 / 3, -1 / 3, -1 / 3, 0, 0, 0, 0])


def test_reinforce_baseline_is_group_mean_subtraction():
    close(group_advantages(R8, 4, "reinforce_baseline"), [0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0])


def test_group_of_one_and_all_equal_give_zero_not_nan():
    r = torch.tensor([1.0, 0.0, 3.0])
    for method in ("grpo", "dr_grpo", "reinforce_baseline"):
        out = group_advantages(r, 1, method)
        assert torch.isfinite(out).all()
        close(out, [0, 0, 0])
    out = group_advantages(torch.full((4,), 0.7), 4, "grpo")
    assert torch.isfinite(out).all()
    close(out, [0, 0, 0, 0])
    with pytest.raises(ValueError, match="rloo"):
        group_advantages(r, 1, "rloo")


def test_group_advantages_bad_input():
    with pytest.raises(ValueError):
        group_advantages(torch.ones(6), 4, "grpo")  # not whole groups
    with pytest.raises(ValueError):
        group_advantages(torch.tensor([1.0, float("nan")]), 2, "grpo")
    with pytest.raises(ValueError):
        group_advantages(torch.ones(4), 2, "ppo")
    with pytest.raises(ValueError):
        group_advantages(torch.ones(2, 2), 2, "grpo")


def test_broadcast_to_tokens():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    close(broadcast_to_tokens(torch.tensor([1.5, -0.5]), mask), [[1.5, 1.5, 0], [-0.5, 0, 0]])


# ---------------------------------------------------------------- REINFORCE++
def test_reinforce_pp_whitens_over_all_valid_tokens():
    # row0 returns [1,1,1]; row1 returns [-1,-1,(pad)]; valid: 1,1,1,-1,-1
    # mean 0.2; squares 3*0.64 + 2*1.44 = 4.8; unbiased var 4.8/4 = 1.2; std 1.0954451
    r = torch.tensor([[0.0, 0.0, 1.0], [0.0, -1.0, 4.0]])
    m = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv, ret = reinforce_pp_advantages(r, m, gamma=1.0)
    close(ret, [[1, 1, 1], [-1, -1, 0]])
    sd = math.sqrt(1.2)
    close(adv, [[0.8 / sd] * 3, [-1.2 / sd, -1.2 / sd, 0.0]])


def test_reinforce_pp_discount_and_kl():
    # token rewards with KL penalty -0.1 each and reward 1 at the end, γ = 0.5:
    # G2 = 0.9, G1 = -0.1 + 0.45 = 0.35, G0 = -0.1 + 0.175 = 0.075
    r = torch.tensor([[-0.1, -0.1, 0.9]])
    _, ret = reinforce_pp_advantages(r, torch.ones(1, 3), gamma=0.5)
    close(ret, [[0.075, 0.35, 0.9]])
