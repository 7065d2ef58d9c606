"""Hand-checked tests for KL estimators (reward and loss placement), entropy and log-probs from logits."""
import math

import pytest
import torch

from trainer.algorithms import (
    apply_kl_to_rewards,
    entropy_from_logits,
    kl_estimate,
    kl_loss,
    logprobs_from_logits,
    masked_entropy_mean,
)

LN2 = math.log(2.0)
LN3 = math.log(3.0)


def close(a, b, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                               atol=atol, rtol=0)


# logπ = [ln 0.5, ln 0.25], logπ_ref = [ln 0.25, ln 0.5]  ->  log_ratio = [ln 2, -ln 2]
LOGP = torch.log(torch.tensor([[0.5, 0.25]]))
REF = torch.log(torch.tensor([[0.25, 0.5]]))


def test_kl_k1_k2_k3_hand_computed():
    close(kl_estimate(LOGP, REF, "k1"), [[LN2, -LN2]])
    close(kl_estimate(LOGP, REF, "k2"), [[0.5 * LN2 ** 2, 0.5 * LN2 ** 2]])  # 0.240227
    # k3 = exp(-lr) - 1 + lr: 0.5 - 1 + ln2 = 0.193147;  2 - 1 - ln2 = 0.306853
    close(kl_estimate(LOGP, REF, "k3"), [[0.5 - 1 + LN2, 2 - 1 - LN2]])


def test_kl_clamp():
    # log_ratio clamped to ±0.5: k1 = ±0.5; k3 = e^-0.5 - 0.5 = 0.106531 and e^0.5 - 1.5 = 0.148721
    close(kl_estimate(LOGP, REF, "k1", clamp=0.5), [[0.5, -0.5]])
    close(kl_estimate(LOGP, REF, "k3", clamp=0.5), [[math.exp(-0.5) - 0.5, math.exp(0.5) - 1.5]])
    huge = kl_estimate(torch.tensor([[0.0]]), torch.tensor([[-1000.0]]), "k3", clamp=20.0)
    assert torch.isfinite(huge).all()
    with pytest.raises(ValueError):
        kl_estimate(LOGP, REF, "k3", clamp=0.0)
    with pytest.raises(ValueError):
        kl_estimate(LOGP, REF, "k4")


def test_k1_and_k3_are_unbiased_in_expectation():
    # Exact expectation over a categorical π = [0.5, .25, .25], π_ref = [.25, .5, .25]:
    # KL(π‖ref) = 0.5 ln2 + 0.25 ln(0.5) + 0 = 0.25 ln2
    pi = torch.tensor([[0.5, 0.25, 0.25]])
    ref = torch.tensor([[0.25, 0.5, 0.25]])
    true_kl = 0.25 * LN2
    for kind in ("k1", "k3"):
        close((pi * kl_estimate(pi.log(), ref.log(), kind)).sum(), true_kl)
    # k2 is biased: E[½ lr²] = 0.5*(0.5 ln²2 + 0.25 ln²2) = 0.375 ln²2 ≠ 0.25 ln 2
    close((pi * kl_estimate(pi.log(), ref.log(), "k2")).sum(), 0.375 * LN2 ** 2)


def test_apply_kl_to_rewards():
    # r' = (r - β·kl)·m with β = 0.5
    r = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0]])
    m = torch.tensor([[1, 1, 1, 0]])
    close(apply_kl_to_rewards(r, kl, 0.5, m), [[-0.05, -0.1, 0.85, 0.0]])


def test_kl_loss_value_and_gradient():
    logp = LOGP.clone().requires_grad_()
    ref = REF.clone().requires_grad_()
    loss = kl_loss(logp, ref, torch.ones(1, 2), kind="k3")
    close(loss, ((0.5 - 1 + LN2) + (2 - 1 - LN2)) / 2)
    loss.backward()
    # d k3 / d logπ = 1 - exp(-lr): 1 - 0.5 = 0.5 and 1 - 2 = -1; token mean over 2 tokens
    close(logp.grad, [[0.25, -0.5]])
    assert ref.grad is None  # the reference is a constant
    # masked token ignored, other aggregation forwarded
    loss = kl_loss(LOGP, REF, torch.tensor([[1, 0]]), kind="k1", agg="seq_sum", normalizer=4.0)
    close(loss, LN2 / 4)


# ---------------------------------------------------------------- entropy / log-probs
H_QUARTER = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # p = [0.25, 0.75]: 0.562335


def test_entropy_hand_computed_and_stable():
    close(entropy_from_logits(torch.zeros(4)), math.log(4))
    close(entropy_from_logits(torch.tensor([0.0, LN3])), H_QUARTER)
    # large logits, exactly representable: [1000, 1001] -> p = [1/(1+e), e/(1+e)]
    p1 = math.e / (1 + math.e)
    close(entropy_from_logits(torch.tensor([1000.0, 1001.0])), -(p1 * math.log(p1) + (1 - p1) * math.log(1 - p1)))
    out = entropy_from_logits(torch.tensor([0.0, LN3, float("-inf")]))  # masked vocabulary entry
    assert torch.isfinite(out)
    close(out, H_QUARTER)
    assert entropy_from_logits(torch.zeros(2, 3, 8, dtype=torch.bfloat16)).dtype == torch.float32


def test_entropy_chunked_matches_unchunked_and_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g) * 3
    ref = torch.distributions.Categorical(logits=logits).entropy()
    close(entropy_from_logits(logits), ref)
    close(entropy_from_logits(logits, chunk_size=4), ref)
    leaf = logits.clone().requires_grad_()
    entropy_from_logits(leaf, chunk_size=4).sum().backward()  # differentiable for an entropy bonus
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_logprobs_from_logits():
    logits = torch.tensor([[[0.0, LN3], [0.0, LN3]]])  # p = [0.25, 0.75] at both positions
    labels = torch.tensor([[1, 0]])
    close(logprobs_from_logits(logits, labels), [[math.log(0.75), math.log(0.25)]])
    close(logprobs_from_logits(logits, labels, chunk_size=1), [[math.log(0.75), math.log(0.25)]])
    # large logits (exactly representable in float32): [1000, 1001] -> log p = -log(1 + e^-1), -log(1 + e)
    big = torch.tensor([[[1000.0, 1001.0], [1000.0, 1001.0]]])
    close(logprobs_from_logits(big, labels), [[-math.log(1 + math.exp(-1)), -math.log(1 + math.e)]])
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 7, generator=g)
    y = torch.randint(0, 7, (2, 3), generator=g)
    close(logprobs_from_logits(z, y), torch.log_softmax(z, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1))
    with pytest.raises(ValueError):
        logprobs_from_logits(logits, torch.tensor([1, 0]))


def test_logprobs_with_temperature_and_entropy_in_one_pass():
    # tau = 2: z = [0, ln 3 / 2] -> p = [1, sqrt 3] / (1 + sqrt 3)
    logits = torch.tensor([[[0.0, LN3], [0.0, LN3]]])
    s3 = math.sqrt(3)
    q0, q1 = 1 / (1 + s3), s3 / (1 + s3)
    lp, ent = logprobs_from_logits(logits, torch.tensor([[1, 0]]), temperature=2.0, return_entropy=True)
    close(lp, [[math.log(q1), math.log(q0)]])
    close(ent, [[-(q0 * math.log(q0) + q1 * math.log(q1))] * 2])
    with pytest.raises(ValueError):
        logprobs_from_logits(logits, torch.tensor([[1, 0]]), temperature=0.0)


def test_chunked_logprobs_and_entropy_give_the_unchunked_values_and_gradients():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3, 5, 9, generator=g) * 2
    y = torch.randint(0, 9, (3, 5), generator=g)
    grads = []
    for chunk in (None, 1, 4, 100):
        leaf = z.clone().requires_grad_()
        lp, ent = logprobs_from_logits(leaf, y, chunk_size=chunk, temperature=0.7, return_entropy=True)
        (lp.sum() + 0.5 * ent.sum()).backward()
        grads.append((lp.detach(), ent.detach(), leaf.grad))
    for lp, ent, grad in grads[1:]:
        close(lp, grads[0][0])
        close(ent, grads[0][1])
        close(grad, grads[0][2])
    close(grads[0][0], torch.log_softmax(z / 0.7, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1))


def test_masked_entropy_mean():
    h = torch.tensor([[1.0, 2.0], [3.0, 9.0]])
    m = torch.tensor([[1, 1], [1, 0]])
    close(masked_entropy_mean(h, m), 2.0)  # (1 + 2 + 3) / 3
    close(masked_entropy_mean(h, m, agg="seq_mean_token_mean"), (1.5 + 3.0) / 2)
