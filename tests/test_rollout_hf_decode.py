"""The fast HF generate path (mathrl_core/rollout/hf_decode.py) against stock HF generate and SDPA."""
from __future__ import annotations

import math

import pytest
import torch

from mathrl_core.templates import build_prompt
from trainer.models.actor import response_logprobs
from mathrl_core.rollout import hf_decode
from mathrl_core.sampling import SamplingConfig
from mathrl_core.rollout.hf import HFRollout

pytestmark = pytest.mark.usefixtures("single_thread")

QUESTIONS = ["Mia has 3 apples. She buys 2 more apples. How many apples does Mia have now?",
             "What is 7 + 5?", "Leo has 12 coins. He spends 5. How many are left?"]


@pytest.fixture
def prompts(tiny_tokenizer):
    return [build_prompt(tiny_tokenizer, q, "qwen_boxed") for q in QUESTIONS]  # three lengths: left padding


def test_greedy_fast_decode_matches_stock_generate(tiny_model, tiny_tokenizer, prompts):
    greedy = SamplingConfig(n=3, temperature=0, max_new_tokens=12)
    fast = HFRollout(tiny_model, tiny_tokenizer, fast_decode=True).generate(prompts, greedy)
    stock = HFRollout(tiny_model, tiny_tokenizer, fast_decode=False).generate(prompts, greedy)
    assert fast.response_token_ids == stock.response_token_ids
    for a, b in zip(fast.response_logprobs, stock.response_logprobs):
        assert a == pytest.approx(b, abs=1e-5)
    assert tiny_model.config._attn_implementation == "sdpa"  # restored after generate
    # a one-token prompt: its shared prefill row is all padding (HF's SDPA mask keeps such rows finite)
    ragged = [[5], tiny_tokenizer(prompts[1], add_special_tokens=False)["input_ids"], [12, 13]]
    fast = HFRollout(tiny_model, tiny_tokenizer, fast_decode=True).generate(ragged, greedy)
    stock = HFRollout(tiny_model, tiny_tokenizer, fast_decode=False).generate(ragged, greedy)
    assert fast.response_token_ids == stock.response_token_ids
    for a, b in zip(fast.response_logprobs, stock.response_logprobs):
        assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 0.9)])
def test_fast_sampling_logprobs_match_the_actor(tiny_model, tiny_tokenizer, prompts, top_k, top_p):
    out = HFRollout(tiny_model, tiny_tokenizer, micro_batch_size=5, fast_decode=True).generate(
        prompts, SamplingConfig(n=4, temperature=0.8, top_k=top_k, top_p=top_p, max_new_tokens=10, seed=3))
    batch, lp = out.to_batch(tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        ref = response_logprobs(tiny_model, batch.input_ids, batch.attention_mask, batch.prompt_len,
                                temperature=0.8)
    assert (lp < 0).sum() == batch.response_mask.sum()
    torch.testing.assert_close(lp * batch.response_mask, ref, atol=1e-5, rtol=0)
    # seeded: the same samples again
    again = HFRollout(tiny_model, tiny_tokenizer, micro_batch_size=5, fast_decode=True).generate(
        prompts, SamplingConfig(n=4, temperature=0.8, top_k=top_k, top_p=top_p, max_new_tokens=10, seed=3))
    assert again.response_token_ids == out.response_token_ids


def test_decode_attention_equals_sdpa_with_padding():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    g = torch.Generator().manual_seed(0)
    b, h, kvh, s, d = 3, 6, 2, 7, 4
    q = torch.randn(b, h, 1, d, generator=g)
    k = torch.randn(b, kvh, s, d, generator=g)
    v = torch.randn(b, kvh, s, d, generator=g)
    mask = torch.ones(b, 1, 1, s, dtype=torch.bool)
    mask[0, ..., :3] = False  # left padding of row 0
    mask[2, ..., :1] = False
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = h // kvh, True
    module.eval()
    ours, _ = hf_decode.grouped_query_decode_attention(module, q, k, v, mask, scaling=0.5)
    ref, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.5)
    assert ours.shape == ref.shape == (b, 1, h, d)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    # by hand for row 1, head 3 (kv head 1): softmax(q·k * 0.5) weights over all 7 positions
    w = torch.softmax((k[1, 1] @ q[1, 3, 0]) * 0.5, dim=0)
    torch.testing.assert_close(ours[1, 0, 3], w @ v[1, 1], atol=1e-5, rtol=0)
    no_mask, _ = hf_decode.grouped_query_decode_attention(module, q, k, v, None, scaling=0.5)
    torch.testing.assert_close(no_mask[1], ours[1], atol=1e-6, rtol=0)  # row 1 has no padding


def test_preallocated_layer_writes_in_place_and_reorders():
    layer = hf_decode.PreallocatedLayer(capacity=5)
    k1, v1 = torch.ones(2, 1, 3, 2), torch.full((2, 1, 3, 2), 2.0)
    keys, values = layer.update(k1, v1)
    assert keys.shape == (2, 1, 3, 2) and layer.get_seq_length() == 3
    k2 = torch.arange(4.0).view(2, 1, 1, 2)
    keys, values = layer.update(k2, k2 * 10)
    assert keys.shape == (2, 1, 4, 2) and keys[1, 0, 3].tolist() == [2.0, 3.0] and values[0, 0, 3].tolist() == [0, 10]
    buffer = layer._k.data_ptr()
    layer.update(k2, k2)
    assert layer._k.data_ptr() == buffer  # no reallocation per step
    layer.reorder_cache(torch.tensor([1, 1, 0]))
    assert layer.keys.shape == (3, 1, 5, 2) and layer.keys[0, 0, 3].tolist() == [2.0, 3.0]
    with pytest.raises(RuntimeError, match="capacity 5"):
        layer.update(torch.ones(3, 1, 1, 2), torch.ones(3, 1, 1, 2))


def test_shared_prefill_fills_the_cache_like_a_full_prefill(tiny_model, tiny_tokenizer, prompts):
    from mathrl_core.models.sequences import position_ids_from_mask

    rows = [tiny_tokenizer(p, add_special_tokens=False)["input_ids"] for p in (prompts[0], prompts[1], prompts[0])]
    P = max(map(len, rows))
    ids = torch.full((3, P), tiny_tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for j, r in enumerate(rows):
        ids[j, P - len(r):], mask[j, P - len(r):] = torch.tensor(r), 1
    shared = hf_decode.preallocated_cache(tiny_model, P + 4)
    assert hf_decode.prefill_shared_prompts(tiny_model, ids, mask, shared)
    full = hf_decode.preallocated_cache(tiny_model, P + 4)
    with torch.no_grad():
        tiny_model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                   position_ids=position_ids_from_mask(mask[:, :-1]), past_key_values=full, use_cache=True)
    for a, b in zip(shared.layers, full.layers):
        m = mask[:, None, :-1, None].bool()  # padded columns hold whatever; real ones must agree
        torch.testing.assert_close(a.keys * m, b.keys * m, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.values * m, b.values * m, atol=1e-5, rtol=0)
    distinct = torch.tensor([rows[0], rows[0]])
    assert hf_decode.prefill_shared_prompts(tiny_model, distinct[:1], torch.ones_like(distinct[:1]),
                                            hf_decode.preallocated_cache(tiny_model, 99)) is False


def test_draw_from_logits_follows_the_distribution():
    torch.manual_seed(0)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    z = torch.log(probs).expand(20000, 5).contiguous()
    draws = hf_decode.draw_from_logits(z).flatten()
    freq = torch.bincount(draws, minlength=5).float() / draws.numel()
    assert freq[4] == 0  # a −inf logit is never drawn
    # within 5 standard errors of each probability
    for f, p in zip(freq.tolist()[:4], probs.tolist()[:4]):
        assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / draws.numel())
    torch.manual_seed(1)
    a = hf_decode.draw_from_logits(z[:8])
    torch.manual_seed(1)
    assert torch.equal(a, hf_decode.draw_from_logits(z[:8]))  # driven by the global RNG


def test_models_outside_the_fast_path_keep_their_attention(tiny_model):
    tiny_model.config._attn_implementation = "eager"
    try:
        with hf_decode.decode_attention(tiny_model) as used:
            assert not used and tiny_model.config._attn_implementation == "eager"
    finally:
        tiny_model.config._attn_implementation = "sdpa"
    with hf_decode.decode_attention(tiny_model) as used:
        assert used and tiny_model.config._attn_implementation == hf_decode.ATTENTION_NAME
    assert tiny_model.config._attn_implementation == "sdpa"
    assert hf_decode.all_full_attention(tiny_model)
