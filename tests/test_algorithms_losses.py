"""Hand-checked tests for loss aggregation, PPO policy/value losses, ratio early-stop, explained variance."""
import math

import pytest
import torch

from trainer.algorithms import (
    aggregate_loss,
    explained_variance,
    kl_loss,
    loss_normalizer,
    policy_loss,
    ratio_early_stop,
    value_loss,
)


def close(a, b, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                               atol=atol, rtol=0)


def lp(ratios):
    """log-probs whose ratio to old log-probs of 0 is ``ratios``."""
    return torch.log(torch.tensor(ratios, dtype=torch.float32))


# ---------------------------------------------------------------- aggregation
# Valid losses: row0 1,2,3,4 (sum 10, 4 tokens); row1 5,6 (sum 11, 2 tokens); 100 = garbage in padding.
LOSS = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 100.0, 100.0]])
MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])


def test_aggregate_token_mean():
    close(aggregate_loss(LOSS, MASK, "token_mean"), 21 / 6)  # 3.5


def test_aggregate_seq_mean_token_mean():
    close(aggregate_loss(LOSS, MASK, "seq_mean_token_mean"), (10 / 4 + 11 / 2) / 2)  # 4.0
    # an all-padding row contributes 0 and is not counted
    loss3 = torch.cat([LOSS, torch.full((1, 4), 50.0)])
    mask3 = torch.cat([MASK, torch.zeros(1, 4, dtype=MASK.dtype)])
    close(aggregate_loss(loss3, mask3, "seq_mean_token_mean"), 4.0)


def test_aggregate_seq_sum_constant_normaliser():
    close(aggregate_loss(LOSS, MASK, "seq_sum"), 21 / (2 * 4))  # default B*T
    close(aggregate_loss(LOSS, MASK, "seq_sum", normalizer=2 * 10), 21 / 20)  # B * max_new_tokens=10


def test_aggregate_edge_cases():
    close(aggregate_loss(LOSS, torch.zeros_like(MASK), "token_mean"), 0.0)  # no NaN
    close(aggregate_loss(LOSS, torch.zeros_like(MASK), "seq_mean_token_mean"), 0.0)
    with pytest.raises(ValueError):
        aggregate_loss(LOSS, MASK, "token_mean", normalizer=0)
    with pytest.raises(ValueError):
        aggregate_loss(LOSS, MASK, "mean")


def test_loss_normalizer():
    assert loss_normalizer(MASK, "token_mean") == 6
    assert loss_normalizer(MASK, "seq_mean_token_mean") == 2
    assert loss_normalizer(MASK, "seq_sum", max_response_len=10) == 20
    assert loss_normalizer(MASK, "seq_sum") == 8
    # list of micro-batch masks with different T
    masks = [torch.tensor([[1, 1, 1]]), torch.tensor([[1, 0], [0, 0]])]
    assert loss_normalizer(masks, "token_mean") == 4
    assert loss_normalizer(masks, "seq_mean_token_mean") == 2  # the empty row does not count
    assert loss_normalizer(masks, "seq_sum", max_response_len=5) == 15


# ---------------------------------------------------------------- policy loss
# eps_low = eps_high = 0.2
# t0: ρ=1.0, A=+1: min(1, 1)        -> ℓ=-1
# t1: ρ=1.5, A=+1: min(1.5, 1.2)    -> ℓ=-1.2   clipped high (no gradient)
# t2: ρ=0.5, A=-1: min(-0.5, -0.8)  -> ℓ=+0.8   clipped low  (no gradient)
# t3: ρ=0.5, A=+1: min(0.5, 0.8)    -> ℓ=-0.5   not clipped
# t4: ρ=4.0, A=-1: min(-4, -1.2)    -> ℓ=+4     not clipped; dual clip c=3 caps it at 3
RATIOS = [[1.0, 1.5, 0.5, 0.5, 4.0]]
ADV = torch.tensor([[1.0, 1.0, -1.0, 1.0, -1.0]])
ONES = torch.ones(1, 5)


def test_policy_loss_ppo_clip_hand_computed():
    logp = lp(RATIOS).requires_grad_()
    loss, stats = policy_loss(logp, torch.zeros(1, 5), ADV, ONES)
    close(loss, (-1 - 1.2 + 0.8 - 0.5 + 4) / 5)  # 0.42
    loss.backward()
    # dℓ/dlogπ = -ρ·A where unclipped, 0 where clipped; token mean over 5
    close(logp.grad, [[-1 / 5, 0, 0, -0.5 / 5, 4 / 5]])
    close(stats["clip_frac_high"], 0.2)
    close(stats["clip_frac_low"], 0.2)
    close(stats["clip_frac"], 0.4)
    close(stats["dual_clip_frac"], 0.0)
    close(stats["ratio_mean"], 7.5 / 5)
    close(stats["ratio_max"], 4.0)
    close(stats["ratio_min"], 0.5)
    # k3: (ρ-1) - ln ρ = 0, 0.5-ln1.5, -0.5+ln2, -0.5+ln2, 3-ln4
    kl = (0 + (0.5 - math.log(1.5)) + 2 * (-0.5 + math.log(2)) + (3 - math.log(4))) / 5
    close(stats["approx_kl"], kl)
    close(stats["tokens"], 5)
    assert not stats["pg_loss"].requires_grad


def test_policy_loss_dual_clip():
    logp = lp(RATIOS).requires_grad_()
    loss, stats = policy_loss(logp, torch.zeros(1, 5), ADV, ONES, dual_clip=3.0)
    close(loss, (-1 - 1.2 + 0.8 - 0.5 + 3) / 5)  # 0.22
    loss.backward()
    close(logp.grad, [[-1 / 5, 0, 0, -0.5 / 5, 0]])  # the capped token has no gradient
    close(stats["dual_clip_frac"], 0.2)
    with pytest.raises(ValueError):
        policy_loss(logp, torch.zeros(1, 5), ADV, ONES, dual_clip=1.0)


def test_dual_clip_inactive_for_positive_advantages():
    # ρ=4, A=+1: PPO clip gives -min(4, 1.2) = -1.2; a dual clip wrongly applied would give min(-1.2, -3) = -3
    logp = lp([[4.0]])
    for dual in (None, 3.0):
        loss, stats = policy_loss(logp, torch.zeros(1, 1), torch.tensor([[1.0]]), torch.ones(1, 1), dual_clip=dual)
        close(loss, -1.2)
        close(stats["dual_clip_frac"], 0.0)


def test_clip_higher_asymmetric():
    # ρ=1.25, A=+1: inside 1+0.28 -> ℓ=-1.25 with gradient -1.25; symmetric 0.2 clips it to -1.2, gradient 0
    # ρ=0.75, A=-1: below 1-0.2 -> ℓ=+0.8 clipped either way
    adv = torch.tensor([[1.0, -1.0]])
    logp = lp([[1.25, 0.75]]).requires_grad_()
    loss, stats = policy_loss(logp, torch.zeros(1, 2), adv, torch.ones(1, 2), clip_low=0.2, clip_high=0.28,
                              agg="seq_sum", normalizer=1.0)
    close(loss, -1.25 + 0.8)
    loss.backward()
    close(logp.grad, [[-1.25, 0.0]])
    close(stats["clip_frac_high"], 0.0)
    close(stats["clip_frac_low"], 0.5)
    logp.grad = None
    loss, stats = policy_loss(logp, torch.zeros(1, 2), adv, torch.ones(1, 2), clip_low=0.2, clip_high=0.2,
                              agg="seq_sum", normalizer=1.0)
    close(loss, -1.2 + 0.8)
    loss.backward()
    close(logp.grad, [[0.0, 0.0]])
    close(stats["clip_frac_high"], 0.5)


def test_policy_loss_aggregation_modes_and_masking():
    # all ratios 1 -> ℓ = -A. Row0 A=1 on 3 tokens; row1 A=-2 on 1 token (+2 padded tokens with garbage)
    adv = torch.tensor([1.0, -2.0])  # [B] advantages are given to every token
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    logp = torch.tensor([[0.0, 0.0, 0.0], [0.0, 30.0, -30.0]])  # padded garbage must not matter
    old = torch.zeros(2, 3)
    # token_mean: (-1-1-1+2)/4 = -0.25
    close(policy_loss(logp, old, adv, mask, agg="token_mean")[0], -0.25)
    # seq_mean_token_mean: (mean(-1,-1,-1) + mean(2)) / 2 = 0.5
    close(policy_loss(logp, old, adv, mask, agg="seq_mean_token_mean")[0], 0.5)
    # seq_sum with Dr.GRPO constant 2 sequences x 8 tokens: (-3 + 2) / 16
    close(policy_loss(logp, old, adv, mask, agg="seq_sum", normalizer=16)[0], -1 / 16)
    _, stats = policy_loss(logp, old, adv, mask)
    close(stats["ratio_max"], 1.0)  # the e^30 in the padding is not seen
    close(stats["ratio_min"], 1.0)


def test_policy_loss_weights_and_empty_mask():
    loss, _ = policy_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2),
                          weights=torch.tensor([[0.5, 2.0]]))
    close(loss, (-0.5 - 2.0) / 2)
    loss, stats = policy_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1, 2))
    close(loss, 0.0)
    close(stats["ratio_mean"], 1.0)
    close(stats["ratio_max"], 1.0)
    close(stats["tokens"], 0.0)


def test_nan_and_inf_in_padding_do_not_leak_into_loss_or_gradient():
    mask = torch.tensor([[1, 1, 0]])
    logp = torch.tensor([[0.0, 0.0, float("nan")]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, float("inf")]])
    adv = torch.tensor([[1.0, -1.0, float("nan")]])
    loss, stats = policy_loss(logp, old, adv, mask, weights=torch.tensor([[1.0, 1.0, float("nan")]]))
    loss = loss + kl_loss(logp, torch.tensor([[0.0, 0.0, float("-inf")]]), mask)
    loss.backward()
    close(loss, 0.0)  # (-1 + 1) / 2 + KL 0
    close(logp.grad, [[-0.5, 0.5, 0.0]])
    assert all(torch.isfinite(v) for v in stats.values())


def test_policy_loss_extreme_ratio_is_finite():
    loss, stats = policy_loss(torch.tensor([[100.0]]), torch.tensor([[0.0]]), torch.tensor([[-1.0]]),
                              torch.ones(1, 1))
    assert torch.isfinite(loss) and torch.isfinite(stats["ratio_max"])


# ---------------------------------------------------------------- micro-batch invariance
def _random_step(seed=0, B=6, T=7):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 2, 5, 1, 4, 6])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    logp = (torch.randn(B, T, generator=g) * 0.3 - 1.0)
    old = logp + torch.randn(B, T, generator=g) * 0.3
    ref = logp + torch.randn(B, T, generator=g) * 0.3
    adv = torch.randn(B, T, generator=g)
    return mask, logp, old, ref, adv


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_sum"])
def test_micro_batch_accumulation_equals_full_batch(agg):
    mask, logp0, old, ref, adv = _random_step()

    def objective(lp_, sl, normalizer):
        m = mask[sl]
        t = int(m.sum(dim=1).max())  # each micro-batch is padded only to its own longest response
        args = dict(agg=agg, normalizer=normalizer)
        pl, _ = policy_loss(lp_[sl][:, :t], old[sl][:, :t], adv[sl][:, :t], m[:, :t], clip_low=0.2, clip_high=0.28,
                            dual_clip=3.0, **args)
        return pl + 0.1 * kl_loss(lp_[sl][:, :t], ref[sl][:, :t], m[:, :t], "k3", **args)

    n = loss_normalizer(mask, agg, max_response_len=7)
    full_lp = logp0.clone().requires_grad_()
    full = objective(full_lp, slice(0, 6), n)
    full.backward()

    micro_lp = logp0.clone().requires_grad_()
    total = 0.0
    for sl in (slice(0, 2), slice(2, 5), slice(5, 6)):
        part = objective(micro_lp, sl, n)
        part.backward()
        total = total + part.detach()
    torch.testing.assert_close(total, full.detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(micro_lp.grad, full_lp.grad, atol=1e-6, rtol=1e-6)

    if agg == "token_mean":
        # control: averaging per-micro-batch token means (no global normaliser) is NOT the same loss
        naive = sum(objective(logp0, sl, None).detach() for sl in (slice(0, 2), slice(2, 5), slice(5, 6))) / 3
        assert not torch.allclose(naive, full.detach(), atol=1e-4)


def test_value_loss_micro_batch_invariance():
    mask, v, old_v, ret, _ = _random_step(seed=1)
    n = loss_normalizer(mask, "token_mean")
    full_v = v.clone().requires_grad_()
    full, _ = value_loss(full_v, old_v, ret, mask, clip=0.2, normalizer=n)
    full.backward()
    micro_v = v.clone().requires_grad_()
    total = 0.0
    for sl in (slice(0, 3), slice(3, 6)):
        part, _ = value_loss(micro_v[sl], old_v[sl], ret[sl], mask[sl], clip=0.2, normalizer=n)
        part.backward()
        total = total + part.detach()
    torch.testing.assert_close(total, full.detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(micro_v.grad, full_v.grad, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- value loss
# clip 0.2
# t0: V=1.0, old=0.5, R=1.2: (V-R)^2 = 0.04; V_clip = 0.7, (0.7-1.2)^2 = 0.25 -> max 0.25 (clipped term), ℓ=0.125
# t1: V=0.6, old=0.5, R=0.0: within clip, both 0.36                       -> ℓ=0.18
# t2: V=0.0, old=0.5, R=1.0: (V-R)^2 = 1.0; V_clip = 0.3, 0.49 -> max 1.0 -> ℓ=0.5
def test_value_loss_clipped_hand_computed():
    v = torch.tensor([[1.0, 0.6, 0.0, 7.0]], requires_grad=True)
    old = torch.tensor([[0.5, 0.5, 0.5, 0.0]])
    ret = torch.tensor([[1.2, 0.0, 1.0, -9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, stats = value_loss(v, old, ret, mask, clip=0.2)
    close(loss, (0.125 + 0.18 + 0.5) / 3)
    loss.backward()
    # t0: clipped branch active -> no gradient; t1: (V-R)/3 = 0.2; t2: (0-1)/3
    close(v.grad, [[0.0, 0.2, -1 / 3, 0.0]])
    close(stats["vf_clip_frac"], 1 / 3)
    close(stats["values_mean"], 1.6 / 3)
    loss, stats = value_loss(v, old, ret, mask, clip=None)
    close(loss, 0.5 * (0.04 + 0.36 + 1.0) / 3)
    close(stats["vf_clip_frac"], 0.0)


# ---------------------------------------------------------------- ratio early stop (RLinf)
def test_ratio_early_stop_uses_mean_ratio_strictly_above_threshold():
    old = torch.zeros(1, 2)
    ones = torch.ones(1, 2)
    assert ratio_early_stop(lp([[1.0, 9.0]]), old, ones, 5.0) is False  # mean 5.0, not > 5.0
    assert ratio_early_stop(lp([[1.0, 9.5]]), old, ones, 5.0) is True  # mean 5.25
    assert ratio_early_stop(lp([[0.1, 0.1]]), old, ones, 5.0) is False  # mean ratio, not |ρ - 1|
    assert ratio_early_stop(lp([[9.5, 9.5]]), old, ones, None) is False  # disabled
    # padded tokens do not count: ratios 1, 1, (100)
    assert ratio_early_stop(lp([[1.0, 1.0, 100.0]]), torch.zeros(1, 3), torch.tensor([[1, 1, 0]]), 5.0) is False
    assert ratio_early_stop(lp([[100.0]]), torch.zeros(1, 1), torch.zeros(1, 1), 5.0) is False  # no tokens


# ---------------------------------------------------------------- explained variance
def test_explained_variance():
    ret = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    close(explained_variance(torch.tensor([[1.0, 2.0, 3.0, 0.0]]), ret, mask), 1.0)  # perfect
    close(explained_variance(torch.tensor([[2.0, 2.0, 2.0, 0.0]]), ret, mask), 0.0)  # constant
    # R - V = [-2, 0, 2]: var 4 (unbiased: 8/2); Var[R] = 1 -> 1 - 4 = -3
    close(explained_variance(torch.tensor([[3.0, 2.0, 1.0, 0.0]]), ret, mask), -3.0)
    assert torch.isnan(explained_variance(torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1, 3)))
