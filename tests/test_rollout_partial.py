"""Partial rollouts (``mathrl_core.rollout.partial``) with the real HF backend on the tiny model: chunked
generation without a weight change gives what one ``generate`` gives; a weight update between chunks makes the
rest of every unfinished row come from the new weights, with versions and log-probs to prove it; optional
per-token fields of ``RolloutOutput`` survive ``select``/``concat``."""
from __future__ import annotations

import pytest
import torch

from mathrl_core.models.loading import export_state_dict, load_causal_lm
from mathrl_core.rollout.base import RolloutOutput
from mathrl_core.rollout.hf import HFRollout
from mathrl_core.rollout.partial import generate_resumable
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import build_prompt
from trainer.models.actor import response_logprobs

pytestmark = pytest.mark.usefixtures("single_thread")
QUESTIONS = ["Mia has 3 apples. She buys 2 more apples. How many apples does Mia have now?", "What is 7 + 5?"]


@pytest.fixture
def prompts(tiny_tokenizer):
    return [build_prompt(tiny_tokenizer, q, "qwen_boxed") for q in QUESTIONS]


def _never_updated():
    return 0


def test_greedy_in_chunks_equals_one_generate(tiny_model, tiny_tokenizer, prompts):
    ro = HFRollout(tiny_model, tiny_tokenizer)
    cfg = SamplingConfig(n=2, temperature=0, max_new_tokens=14)
    whole = ro.generate(prompts, cfg)
    calls = []
    chunked = generate_resumable(ro, prompts, cfg, chunk_tokens=4, version=0,
                                 between_chunks=lambda: calls.append(1) or 0)
    assert len(calls) == 3  # 14 tokens in chunks of 4: three interruptions
    assert chunked.response_token_ids == whole.response_token_ids
    assert chunked.texts == whole.texts and chunked.finish_reasons == whole.finish_reasons
    assert chunked.prompt_index == whole.prompt_index == [0, 0, 1, 1]
    assert chunked.prompt_token_ids == whole.prompt_token_ids
    assert chunked.response_versions == [[0] * len(r) for r in whole.response_token_ids]
    for a, b in zip(chunked.response_logprobs, whole.response_logprobs):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=0)


def test_stop_string_across_a_chunk_boundary(tiny_model, tiny_tokenizer, prompts):
    """A stop string whose tokens lie on both sides of a chunk boundary ends the row right after it, and no
    further chunk is generated. (Seeded: the same chunks come out with and without the stop string.)"""
    ro = HFRollout(tiny_model, tiny_tokenizer)
    cfg = dict(temperature=1.0, max_new_tokens=16, seed=7)
    free = generate_resumable(ro, prompts[:1], SamplingConfig(**cfg), chunk_tokens=4, version=0,
                              between_chunks=_never_updated)
    ids = free.response_token_ids[0]
    assert len(ids) == 16, "the random tiny model should not stop by itself within 16 tokens"
    starts = [j for j in (2, 3, 6, 7) if tiny_tokenizer.decode(ids[j:j + 3], skip_special_tokens=True).strip()
              and tiny_tokenizer.decode(ids[j:j + 3], skip_special_tokens=True)
              not in tiny_tokenizer.decode(ids[:j + 2], skip_special_tokens=True)]
    assert starts, [tiny_tokenizer.decode([t]) for t in ids]
    j = starts[0]  # tokens j..j+2 straddle the boundary after token 4 (j = 2, 3) or 8 (j = 6, 7)
    stop = tiny_tokenizer.decode(ids[j:j + 3], skip_special_tokens=True)
    calls = []
    out = generate_resumable(ro, prompts[:1], SamplingConfig(**cfg, stop=[stop]), chunk_tokens=4, version=0,
                             between_chunks=lambda: calls.append(1) or 0)
    assert out.finish_reasons == ["stop"] and out.texts[0].endswith(stop)
    assert out.response_token_ids[0] == ids[:j + 3]
    assert len(calls) == (j + 3) // 4  # the row ended in the chunk that completed the stop string


def test_weights_loaded_between_chunks_generate_the_rest(tiny_model_dir, tiny_tokenizer, prompts):
    """After the first chunk the backend takes other weights (version 1): every unfinished row continues under
    them. The recorded log-probs are the old weights' for the first chunk and the new weights' after it."""
    old = load_causal_lm(str(tiny_model_dir), dtype="float32")
    new = load_causal_lm(str(tiny_model_dir), dtype="float32")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(0.05 * torch.randn_like(p))
    new_weights = {k: v.clone() for k, v in export_state_dict(new).items()}
    ro = HFRollout(load_causal_lm(str(tiny_model_dir), dtype="float32"), tiny_tokenizer)
    version = {"v": 0}

    def between():
        if version["v"] == 0:
            ro.update_weights(new_weights)
            version["v"] = 1
        return version["v"]

    chunk, cfg = 5, SamplingConfig(n=3, temperature=1.0, max_new_tokens=12, seed=3)
    out = generate_resumable(ro, prompts, cfg, chunk_tokens=chunk, version=0, between_chunks=between)
    assert version["v"] == 1
    for ids, vers, reason in zip(out.response_token_ids, out.response_versions, out.finish_reasons):
        assert vers == [0] * min(chunk, len(ids)) + [1] * max(0, len(ids) - chunk)
    assert any(len(ids) > chunk for ids in out.response_token_ids)
    batch, lp = out.to_batch(tiny_tokenizer.pad_token_id)
    versions = torch.zeros_like(lp, dtype=torch.long)
    for j, v in enumerate(out.response_versions):
        versions[j, :len(v)] = torch.tensor(v)
    with torch.no_grad():
        lp_old, lp_new = (response_logprobs(m, batch.input_ids, batch.attention_mask, batch.prompt_len)
                          for m in (old, new))
    mask = batch.response_mask.bool()
    expect = torch.where(versions == 1, lp_new, lp_old)
    torch.testing.assert_close(lp[mask], expect[mask], atol=1e-5, rtol=0)
    later = mask & (versions == 1)
    assert (lp[later] - lp_old[later]).abs().max() > 1e-2  # the rest really came from other weights


def test_optional_token_fields_survive_select_and_concat():
    def out(versions):
        return RolloutOutput([[1], [1]], [[2, 3], [4]], [[0.0, 0.0], [0.0]], ["a", "b"], ["stop", "stop"], [0, 0],
                             response_versions=versions)

    a, b = out([[0, 1], [1]]), out([[2, 2], [3]])
    both = RolloutOutput.concat([a, b.select([1])])
    assert both.response_versions == [[0, 1], [1], [3]]
    assert RolloutOutput.concat([out(None), out(None)]).response_versions is None
    with pytest.raises(ValueError, match="some outputs have response_versions"):
        RolloutOutput.concat([a, out(None)])
    with pytest.raises(ValueError, match="row 1: 1 tokens but 2 values in response_versions"):
        out([[0, 1], [1, 1]])
