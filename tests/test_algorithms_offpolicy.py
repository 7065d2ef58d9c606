"""Off-policy corrections (``trainer.algorithms.offpolicy``) against hand-computed values.

The fixture: behaviour log-probs log 0.1 everywhere, proximal log-probs log(0.1 · ρ) with token ratios
    row 0: ρ = [2, 0.25, 4]        (sequence ratio 2 · 0.25 · 4 = 2)
    row 1: ρ = [1.5, 0.5, pad]     (sequence ratio 0.75)
so every weight below is arithmetic on these numbers; 5 valid tokens.
"""
from __future__ import annotations

import math

import pytest
import torch

from trainer.algorithms import (decoupled_ppo_loss, icepop_weights, masked_sequence_weights, masked_token_weights,
                                off_policy_weights, policy_loss, sequence_tis_weights, tis_weights)

MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
BEHAVIOUR = torch.full((2, 3), math.log(0.1))
RHO = torch.tensor([[2.0, 0.25, 4.0], [1.5, 0.5, 1.0]])
PROXIMAL = torch.log(0.1 * RHO)
PROXIMAL[1, 2] = 123.0  # garbage at the padded position must not leak anywhere


def close(a, b):
    torch.testing.assert_close(a, torch.tensor(b, dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_sequence_tis_truncates_the_product_of_ratios():
    close(sequence_tis_weights(PROXIMAL, BEHAVIOUR, MASK, cap=3.0), [[2, 2, 2], [0.75, 0.75, 0]])
    close(sequence_tis_weights(PROXIMAL, BEHAVIOUR, MASK, cap=1.5), [[1.5, 1.5, 1.5], [0.75, 0.75, 0]])


def test_masked_is_drops_tokens_or_whole_sequences_above_the_cap():
    close(masked_token_weights(PROXIMAL, BEHAVIOUR, MASK, cap=3.0), [[2, 0.25, 0], [1.5, 0.5, 0]])
    close(masked_sequence_weights(PROXIMAL, BEHAVIOUR, MASK, cap=3.0), [[2, 2, 2], [0.75, 0.75, 0]])
    close(masked_sequence_weights(PROXIMAL, BEHAVIOUR, MASK, cap=1.5), [[0, 0, 0], [0.75, 0.75, 0]])


def test_icepop_keeps_only_ratios_inside_the_band():
    # band [1/3, 3]: 0.25 is below it, 4 above it
    close(icepop_weights(PROXIMAL, BEHAVIOUR, MASK, cap=3.0), [[2, 0, 0], [1.5, 0.5, 0]])
    with pytest.raises(ValueError, match="C > 1"):
        icepop_weights(PROXIMAL, BEHAVIOUR, MASK, cap=0.5)


@pytest.mark.parametrize("kind, cap, weights, truncated, masked", [
    ("tis_token", 3.0, [[2, 0.25, 3], [1.5, 0.5, 0]], 1 / 5, 0.0),
    ("tis_seq", 1.5, [[1.5, 1.5, 1.5], [0.75, 0.75, 0]], 3 / 5, 0.0),
    ("mis_token", 3.0, [[2, 0.25, 0], [1.5, 0.5, 0]], 0.0, 1 / 5),
    ("mis_seq", 1.5, [[0, 0, 0], [0.75, 0.75, 0]], 0.0, 3 / 5),
    ("icepop", 3.0, [[2, 0, 0], [1.5, 0.5, 0]], 0.0, 2 / 5),
])
def test_dispatcher_weights_and_fractions(kind, cap, weights, truncated, masked):
    w, stats = off_policy_weights(kind, PROXIMAL, BEHAVIOUR, MASK, cap)
    close(w, weights)
    close(stats["truncated_frac"], truncated)
    close(stats["masked_frac"], masked)
    close(stats["weight_mean"], sum(map(sum, weights)) / 5)


def test_token_tis_is_the_existing_tis_weights():
    w, _ = off_policy_weights("tis_token", PROXIMAL, BEHAVIOUR, MASK, 3.0)
    assert torch.equal(w, tis_weights(PROXIMAL, BEHAVIOUR, MASK, 3.0))


def test_equal_policies_give_weight_one_and_nothing_dropped():
    for kind in ("tis_token", "tis_seq", "mis_token", "mis_seq", "icepop"):
        w, stats = off_policy_weights(kind, BEHAVIOUR, BEHAVIOUR, MASK, 2.0)
        assert torch.equal(w, MASK) and float(stats["masked_frac"]) == float(stats["truncated_frac"]) == 0.0


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="unknown off-policy correction"):
        off_policy_weights("tis", PROXIMAL, BEHAVIOUR, MASK, 2.0)
    with pytest.raises(ValueError, match="same \\[B, T\\] shape"):
        off_policy_weights("tis_seq", PROXIMAL[:, :2], BEHAVIOUR, MASK, 2.0)
    with pytest.raises(ValueError, match="cap must be > 0"):
        off_policy_weights("mis_seq", PROXIMAL, BEHAVIOUR, MASK, 0.0)


def test_decoupled_ppo_loss_by_hand():
    """One row, two tokens, A = [1, −1], ε = 0.2. Current/proximal ratio r = [1.5, 0.9], proximal/behaviour
    ρ = [2, 0.5].
    token 0: −min(1.5·1, 1.2·1) = −1.2 (clipped, no gradient);  token 1: −min(0.9·(−1), 0.9·(−1)) = 0.9.
    mis_token, C = 3: w = [2, 0.5] -> ℓ = [−2.4, 0.45], token mean −0.975;
    d/d logπ_θ of token 1: w · (−A) · r / 2 = 0.5 · 1 · 0.9 / 2 = 0.225.
    C = 1.5 drops token 0: ℓ = [0, 0.45], mean 0.225."""
    mask = torch.ones(1, 2)
    behaviour = torch.log(torch.tensor([[0.2, 0.4]]))
    proximal = torch.log(torch.tensor([[0.4, 0.2]]))
    theta = torch.log(torch.tensor([[0.6, 0.18]])).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0]])
    loss, stats = decoupled_ppo_loss(theta, proximal, behaviour, adv, mask, correction="mis_token", cap=3.0,
                                     clip_low=0.2, clip_high=0.2)
    close(loss, -0.975)
    loss.backward()
    close(theta.grad, [[0.0, 0.225]])
    close(stats["masked_frac"], 0.0)
    close(stats["clip_frac"], 0.5)
    loss2, stats2 = decoupled_ppo_loss(theta.detach(), proximal, behaviour, adv, mask, correction="mis_token",
                                       cap=1.5)
    close(loss2, 0.225)
    close(stats2["masked_frac"], 0.5)
    # it is policy_loss anchored at the proximal policy with the correction's weights
    w, _ = off_policy_weights("tis_seq", proximal, behaviour, mask, 2.0)
    ref, _ = policy_loss(theta.detach(), proximal, adv, mask, weights=w)
    got, _ = decoupled_ppo_loss(theta.detach(), proximal, behaviour, adv, mask, correction="tis_seq", cap=2.0)
    torch.testing.assert_close(got, ref)
