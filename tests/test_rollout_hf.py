"""HF generate rollout: sampling log-probs equal the actor's log-probs, n samples, seeds, stops, top-k/p."""
from __future__ import annotations

import pytest
import torch

from mathrl_core.templates import build_prompt
from trainer.models.actor import response_logprobs
from mathrl_core.models.loading import load_causal_lm
from mathrl_core.rollout.base import RolloutOutput, find_stop
from mathrl_core.sampling import SamplingConfig
from mathrl_core.rollout.hf import HFRollout, top_k_top_p_mask

pytestmark = pytest.mark.usefixtures("single_thread")

QUESTIONS = ["Mia has 3 apples. She buys 2 more apples. How many apples does Mia have now?",
             "What is 7 + 5?", "Leo has 12 coins."]


@pytest.fixture
def prompts(tiny_tokenizer):
    return [build_prompt(tiny_tokenizer, q, "qwen_boxed") for q in QUESTIONS]


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_sampling_logprobs_match_response_logprobs(tiny_model, tiny_tokenizer, prompts, temperature):
    ro = HFRollout(tiny_model, tiny_tokenizer, micro_batch_size=4)  # 9 rows: uneven micro-batches
    out = ro.generate(prompts, SamplingConfig(n=3, temperature=temperature, max_new_tokens=12, seed=0))
    assert len(out) == 9 and out.prompt_index == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert out.prompt_token_ids[0] == tiny_tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    assert all(r in ("stop", "length") for r in out.finish_reasons)
    batch, lp = out.to_batch(tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        ref = response_logprobs(tiny_model, batch.input_ids, batch.attention_mask, batch.prompt_len,
                                temperature=temperature)
    assert (lp < 0).sum() == batch.response_mask.sum()
    torch.testing.assert_close(lp * batch.response_mask, ref, atol=1e-5, rtol=0)
    assert out.texts[0] == tiny_tokenizer.decode(out.response_token_ids[0], skip_special_tokens=True)


def test_seed_determinism_and_global_rng(tiny_model, tiny_tokenizer, prompts):
    tiny_model.train()
    ro = HFRollout(tiny_model, tiny_tokenizer)
    cfg = SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=123)
    state = torch.random.get_rng_state()
    a, b = ro.generate(prompts, cfg), ro.generate(prompts, cfg)
    assert torch.equal(torch.random.get_rng_state(), state)  # a seeded rollout leaves the run's RNG alone
    assert a.response_token_ids == b.response_token_ids
    ids_in = ro.generate([tiny_tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], cfg)
    assert ids_in.response_token_ids == a.response_token_ids  # token-id prompts work the same as strings
    c = ro.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=124))
    assert c.response_token_ids != a.response_token_ids
    torch.manual_seed(5)
    d = ro.generate(prompts, SamplingConfig(n=2, max_new_tokens=8))  # seed=None: the global RNG drives it
    torch.manual_seed(5)
    assert ro.generate(prompts, SamplingConfig(n=2, max_new_tokens=8)).response_token_ids == d.response_token_ids
    assert tiny_model.training  # train mode restored after generation


def test_greedy_matches_plain_hf_generate(tiny_model, tiny_tokenizer, prompts):
    ro = HFRollout(tiny_model, tiny_tokenizer)
    out = ro.generate(prompts[:1], SamplingConfig(temperature=0, max_new_tokens=10))
    ids = torch.tensor([out.prompt_token_ids[0]])
    with torch.no_grad():
        ref = tiny_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=10, eos_token_id=ro.eos_token_ids(),
                                  pad_token_id=tiny_tokenizer.pad_token_id)
    assert out.response_token_ids[0] == ref[0, ids.shape[1]:].tolist()[:len(out.response_token_ids[0])]
    assert out.finish_reasons == ["length"] and len(out.response_token_ids[0]) == 10


def test_stop_strings_and_stop_tokens(tiny_model, tiny_tokenizer, prompts):
    ro = HFRollout(tiny_model, tiny_tokenizer)
    # seeded sampling of one row: the same tokens come out up to wherever a stop ends the row
    cfg = dict(temperature=1.0, max_new_tokens=16, seed=7)
    full = ro.generate(prompts[:1], SamplingConfig(**cfg))
    text, ids = full.texts[0], full.response_token_ids[0]
    assert len(ids) == 16, "the random tiny model should not stop by itself within 16 tokens"
    # a stop string taken from the middle of the sampled text: generation must end right after it
    windows = [tiny_tokenizer.decode(ids[j:j + 2], skip_special_tokens=True) for j in range(16)]
    j = next(j for j in range(3, 14) if windows[j].strip() and "\ufffd" not in windows[j])
    stop = windows[j]
    kept = ro.generate(prompts[:1], SamplingConfig(**cfg, stop=[stop]))
    assert kept.texts[0] == text[:text.index(stop) + len(stop)] and kept.finish_reasons == ["stop"]
    n_kept = len(kept.response_token_ids[0])
    assert n_kept <= j + 2 and kept.response_token_ids[0] == ids[:n_kept]
    assert stop in tiny_tokenizer.decode(ids[:n_kept]) and stop not in tiny_tokenizer.decode(ids[:n_kept - 1])
    assert kept.response_logprobs[0] == pytest.approx(full.response_logprobs[0][:n_kept], abs=1e-6)
    dropped = ro.generate(prompts[:1], SamplingConfig(**cfg, stop=[stop], include_stop_str_in_output=False))
    assert dropped.texts[0] == text[:text.index(stop)]
    assert dropped.response_token_ids == kept.response_token_ids
    # an extra stop token id ends the response and is kept (like an eos)
    tok_id = ids[5]
    first = ids.index(tok_id)
    by_token = ro.generate(prompts[:1], SamplingConfig(**cfg, stop_token_ids=[tok_id]))
    assert by_token.response_token_ids[0] == ids[:first + 1] and by_token.finish_reasons == ["stop"]
    assert full.finish_reasons == ["length"]


def test_find_stop_bisection(tiny_tokenizer):
    ids = tiny_tokenizer("<think> 2 + 3 = 5 </think> <answer> 5 </answer> trailing text",
                         add_special_tokens=False)["input_ids"]
    k, text = find_stop(tiny_tokenizer, ids, ["</answer>"])
    assert text == "<think> 2 + 3 = 5 </think> <answer> 5 </answer>"
    assert "</answer>" in tiny_tokenizer.decode(ids[:k]) and "</answer>" not in tiny_tokenizer.decode(ids[:k - 1])
    dropped = find_stop(tiny_tokenizer, ids, ["</answer>"], include_stop=False)[1]
    assert dropped == "<think> 2 + 3 = 5 </think> <answer> 5 "
    assert find_stop(tiny_tokenizer, ids, ["=", "</think>"])[1] == "<think> 2 + 3 ="  # the earliest stop wins
    assert find_stop(tiny_tokenizer, ids, ["nope"]) is None


def test_top_k_top_p_mask_hand_values():
    z = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(top_k_top_p_mask(z, 2, 1.0)).tolist() == [[False, False, True, True]]
    assert torch.isinf(top_k_top_p_mask(z, 0, 0.8)).tolist() == [[False, False, True, True]]  # 0.5+0.3 reaches 0.8
    assert torch.isinf(top_k_top_p_mask(z, 0, 0.81)).tolist() == [[False, False, False, True]]
    assert torch.isinf(top_k_top_p_mask(z, 0, 0.1)).tolist() == [[False, True, True, True]]


def test_sampling_filters_and_checkpoint_defaults_do_not_leak(tiny_model, tiny_tokenizer, prompts):
    # a checkpoint generation config like Qwen's must not change what we sample from
    tiny_model.generation_config.top_k = 1
    tiny_model.generation_config.repetition_penalty = 1.5
    ro = HFRollout(tiny_model, tiny_tokenizer, micro_batch_size=128)
    first = lambda out: [r[0] for r in out.response_token_ids]  # noqa: E731
    free = ro.generate(prompts[:1], SamplingConfig(n=256, temperature=3.0, max_new_tokens=1, seed=0))
    assert len(set(first(free))) > 50  # near-uniform random model: HF's default top_k=50 is not applied either
    assert tiny_model.generation_config.top_k == 1  # restored
    topk = ro.generate(prompts[:1], SamplingConfig(n=128, temperature=3.0, top_k=5, max_new_tokens=1, seed=0))
    ids = torch.tensor([topk.prompt_token_ids[0]])
    with torch.no_grad():
        logits = tiny_model(input_ids=ids).logits[0, -1]
    assert set(first(topk)) <= set(torch.topk(logits, 5).indices.tolist()) and len(set(first(topk))) > 1
    topp = ro.generate(prompts[:1], SamplingConfig(n=128, temperature=3.0, top_p=0.05, max_new_tokens=1, seed=0))
    nucleus = torch.isfinite(top_k_top_p_mask(logits[None] / 3.0, 0, 0.05))[0].nonzero().flatten().tolist()
    assert set(first(topp)) <= set(nucleus) and len(nucleus) < 60
    # log-probs stay those of the full temperature-scaled distribution (top-k/top-p not folded in)
    lp = torch.log_softmax(logits / 3.0, -1)
    assert topk.response_logprobs[0][0] == pytest.approx(lp[topk.response_token_ids[0][0]].item(), abs=1e-5)


def test_update_weights(tiny_model_dir, tiny_model, tiny_tokenizer, prompts):
    other = load_causal_lm(str(tiny_model_dir))
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    greedy = SamplingConfig(temperature=0, max_new_tokens=8)
    ro = HFRollout(tiny_model, tiny_tokenizer)
    before = ro.generate(prompts, greedy)
    target = HFRollout(other, tiny_tokenizer).generate(prompts, greedy)
    assert before.response_token_ids != target.response_token_ids
    ro.update_weights(other.state_dict())
    after = ro.generate(prompts, greedy)
    assert after.response_token_ids == target.response_token_ids
    with pytest.raises(KeyError):
        ro.update_weights({"bogus.weight": torch.zeros(2)})


def test_output_helpers_and_config_validation():
    out = RolloutOutput([[1, 2], [1, 2], [3]], [[4], [5, 6], []], [[-0.1], [-0.2, -0.3], []], ["a", "b", ""],
                        ["stop", "length", "stop"], [0, 0, 1])
    sub = out.select([1, 2])
    assert sub.response_token_ids == [[5, 6], []] and sub.prompt_index == [0, 1]
    both = RolloutOutput.concat([out, sub])
    assert len(both) == 5 and both.texts[3:] == ["b", ""]
    batch, lp = out.to_batch(pad_token_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 4, 0], [1, 2, 5, 6], [0, 3, 0, 0]]
    torch.testing.assert_close(lp, torch.tensor([[-0.1, 0.0], [-0.2, -0.3], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="tokens but"):
        RolloutOutput([[1]], [[4, 5]], [[-0.1]], ["a"], ["stop"], [0])
    for bad in (dict(n=0), dict(temperature=-1), dict(top_p=0), dict(top_k=-2), dict(max_new_tokens=0),
                dict(stop=[""])):
        with pytest.raises(ValueError):
            SamplingConfig(**bad)
    assert SamplingConfig(stop="</answer>").stop == ["</answer>"]


def test_lora_policy_rollout(tiny_model_dir, tiny_tokenizer, prompts):
    from mathrl_core.models.loading import LoraSpec

    model = load_causal_lm(str(tiny_model_dir), lora=LoraSpec(rank=4, alpha=8))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    out = HFRollout(model, tiny_tokenizer).generate(prompts, SamplingConfig(n=2, max_new_tokens=6, seed=0))
    batch, lp = out.to_batch(tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        ref = response_logprobs(model, batch.input_ids, batch.attention_mask, batch.prompt_len)
    torch.testing.assert_close(lp * batch.response_mask, ref, atol=1e-5, rtol=0)
