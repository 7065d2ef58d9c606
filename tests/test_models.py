"""Actor log-probs, critic values, LoRA export and weight loading on the tiny local checkpoint."""
from __future__ import annotations

import math

import pytest
import torch

from mathrl_core.models.loading import (LoraSpec, export_state_dict, load_causal_lm, load_reference, load_weights,
                                        torch_dtype)
from mathrl_core.models.sequences import pad_sequences, position_ids_from_mask
from trainer.models.actor import logprobs_from_logits, reference_logprobs, response_logprobs
from trainer.models.critic import Critic, response_values

pytestmark = pytest.mark.usefixtures("single_thread")

PROMPTS = [[5, 9, 23, 40, 41, 7], [12, 13], [99, 100, 101, 102]]
RESPONSES = [[30, 31, 32], [50, 51, 52, 53, 54], [60]]


def _batch():
    return pad_sequences(PROMPTS, RESPONSES, pad_token_id=0)


def _unpadded_logprobs(model, temperature=1.0):
    """Reference: each sequence alone, no padding, plain log_softmax."""
    out = []
    with torch.no_grad():
        for p, r in zip(PROMPTS, RESPONSES):
            ids = torch.tensor([p + r])
            logits = model(input_ids=ids).logits[0].float() / temperature
            lp = torch.log_softmax(logits[:-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
            probs = torch.softmax(logits[:-1], -1)
            ent = -(probs * torch.log_softmax(logits[:-1], -1)).sum(-1)
            out.append((lp[-len(r):], ent[-len(r):]))
    return out


def test_pad_sequences_layout():
    b = _batch()
    assert b.prompt_len == 6 and b.input_ids.shape == (3, 11)
    assert b.input_ids[1].tolist() == [0, 0, 0, 0, 12, 13, 50, 51, 52, 53, 54]
    assert b.attention_mask[2].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert b.response_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert position_ids_from_mask(b.attention_mask)[1, 4:].tolist() == list(range(7))
    with pytest.raises(ValueError):
        pad_sequences([[]], [[1]], 0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_response_logprobs_match_unpadded(tiny_model, temperature):
    b = _batch()
    ref = _unpadded_logprobs(tiny_model, temperature)
    with torch.no_grad():
        lp, ent = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len,
                                    temperature=temperature, return_entropy=True)
        lp_mb = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len,
                                  temperature=temperature, micro_batch_size=1)
    assert lp.shape == (3, 5)
    for i, (ref_lp, ref_ent) in enumerate(ref):
        n = len(RESPONSES[i])
        torch.testing.assert_close(lp[i, :n], ref_lp, atol=1e-5, rtol=0)
        torch.testing.assert_close(ent[i, :n], ref_ent, atol=1e-5, rtol=0)
        assert (lp[i, n:] == 0).all() and (ent[i, n:] == 0).all()
    torch.testing.assert_close(lp_mb, lp, atol=1e-6, rtol=0)


def _grouped_batch():
    """Prompts 0 and 1 each sampled three times, prompt 2 once, rows interleaved (as after a shuffle)."""
    rows = [(0, [30, 31, 32]), (1, [50, 51]), (0, [33]), (2, [60, 61, 62, 63]), (1, [52, 53, 54, 55, 56]),
            (0, [34, 35]), (1, [57])]
    return pad_sequences([PROMPTS[i] for i, _ in rows], [r for _, r in rows], pad_token_id=0), rows


def test_distinct_prompts_maps_rows_to_their_prompt():
    from mathrl_core.models.sequences import distinct_prompts

    b, rows = _grouped_batch()
    first, inverse = distinct_prompts(b.input_ids, b.attention_mask, b.prompt_len)
    assert first.numel() == 3
    for row, (prompt, _) in enumerate(rows):
        assert rows[int(first[inverse[row]])][0] == prompt
    assert sorted(first.tolist()) == [0, 1, 3]  # the first row of each prompt


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_prompt_forward_gives_the_same_logprobs_entropy_and_gradients(tiny_model, temperature):
    b, _ = _grouped_batch()
    results, shapes = [], []
    hook = tiny_model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                                with_kwargs=True)
    for share in (False, True):
        tiny_model.zero_grad(set_to_none=True)
        lp, ent = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len,
                                    temperature=temperature, return_entropy=True, share_prompts=share)
        ((lp * b.response_mask).sum() + 0.1 * (ent * b.response_mask).sum()).backward()
        results.append((lp.detach(), ent.detach(),
                        {n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None}))
    hook.remove()
    # unshared: one pass over [7, P + T]; shared: the 3 distinct prompts, then the 7 responses minus the last column
    assert shapes == [(7, 6 + 5), (3, 6), (7, 4)]
    (lp0, ent0, g0), (lp1, ent1, g1) = results
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=0)
    torch.testing.assert_close(ent1, ent0, atol=1e-5, rtol=0)
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=1e-4)
    tiny_model.zero_grad(set_to_none=True)


def test_shared_prompt_forward_with_one_response_column(tiny_model):
    b = pad_sequences([PROMPTS[0]] * 3, [[30], [31], [32]], pad_token_id=0)
    with torch.no_grad():
        shared = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len, share_prompts=True)
        full = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len)
    assert shared.shape == (3, 1)
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=0)


def test_full_logits_fallback_for_models_without_logits_to_keep(tiny_model, monkeypatch):
    from mathrl_core.models import sequences

    b = _batch()
    with torch.no_grad():
        kept = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len)
        monkeypatch.setitem(sequences._LOGITS_TO_KEEP, type(tiny_model), False)
        full = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len)
    torch.testing.assert_close(full, kept, atol=1e-6, rtol=0)


def test_logprobs_from_logits_hand_values():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]])
    lp, ent = logprobs_from_logits(logits, torch.tensor([[1, 0]]), temperature=2.0, return_entropy=True)
    # row 1: uniform over 4 -> log(1/4), entropy log 4. Row 2: z = [1, 0, 0, 0], p0 = e / (e + 3)
    p0, p1 = math.e / (math.e + 3), 1 / (math.e + 3)
    torch.testing.assert_close(lp, torch.tensor([[math.log(0.25), math.log(p0)]]))
    torch.testing.assert_close(ent, torch.tensor([[math.log(4), -p0 * math.log(p0) - 3 * p1 * math.log(p1)]]))


def test_response_logprobs_gradients_and_reference(tiny_model_dir, tiny_model):
    b = _batch()
    lp = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len)
    (lp * b.response_mask).sum().backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    ref = load_reference(str(tiny_model_dir))
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training
    ref_lp = reference_logprobs(ref, b.input_ids, b.attention_mask, b.prompt_len)
    assert not ref_lp.requires_grad
    torch.testing.assert_close(ref_lp, lp.detach(), atol=1e-6, rtol=0)


def test_dtype_and_gradient_checkpointing(tiny_model_dir, tiny_model):
    b = _batch()
    gc = load_causal_lm(str(tiny_model_dir), gradient_checkpointing=True)
    assert gc.is_gradient_checkpointing
    gc.train()
    lp_gc = response_logprobs(gc, b.input_ids, b.attention_mask, b.prompt_len)
    lp_gc.sum().backward()
    tiny_model.train()
    lp = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len)
    lp.sum().backward()
    torch.testing.assert_close(lp_gc, lp, atol=1e-6, rtol=0)
    g1 = dict(gc.named_parameters())["model.layers.0.mlp.up_proj.weight"].grad
    g2 = dict(tiny_model.named_parameters())["model.layers.0.mlp.up_proj.weight"].grad
    torch.testing.assert_close(g1, g2, atol=1e-6, rtol=1e-4)
    bf = load_causal_lm(str(tiny_model_dir), dtype="bf16")
    assert next(bf.parameters()).dtype == torch.bfloat16
    with torch.no_grad():
        lp_bf = response_logprobs(bf, b.input_ids, b.attention_mask, b.prompt_len)
    assert lp_bf.dtype == torch.float32 and (lp_bf - lp.detach()).abs().max() < 0.1
    with pytest.raises(ValueError, match="unknown dtype"):
        torch_dtype("float8")


def test_lora_training_and_merged_export(tiny_model_dir, tiny_model):
    model = load_causal_lm(str(tiny_model_dir), lora=LoraSpec(rank=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    b = _batch()
    with torch.no_grad():  # lora_B starts at zero: same function as the base model
        torch.testing.assert_close(response_logprobs(model, b.input_ids, b.attention_mask, b.prompt_len),
                                   response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len))
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
        lora_lp = response_logprobs(model, b.input_ids, b.attention_mask, b.prompt_len)
    exported = export_state_dict(model)
    assert set(exported) == set(tiny_model.state_dict())  # plain HF names, lm_head.weight included
    load_weights(tiny_model, exported)
    with torch.no_grad():
        merged_lp = response_logprobs(tiny_model, b.input_ids, b.attention_mask, b.prompt_len)
    torch.testing.assert_close(merged_lp, lora_lp, atol=1e-5, rtol=0)
    # the export did not merge in place: the LoRA model still computes the same thing
    with torch.no_grad():
        torch.testing.assert_close(response_logprobs(model, b.input_ids, b.attention_mask, b.prompt_len), lora_lp)


def test_load_weights_errors(tiny_model):
    sd = tiny_model.state_dict()
    with pytest.raises(KeyError, match="unknown parameter"):
        load_weights(tiny_model, {"model.nope.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="shape mismatch"):
        load_weights(tiny_model, {"model.norm.weight": torch.zeros(3)})
    before = sd["model.norm.weight"].clone()
    load_weights(tiny_model, {"model.norm.weight": before * 2})  # a subset is fine
    torch.testing.assert_close(tiny_model.state_dict()["model.norm.weight"], before * 2)


def test_critic_values_alignment_and_round_trip(tiny_model_dir, tmp_path):
    critic = Critic.from_model(str(tiny_model_dir))
    b = _batch()
    with torch.no_grad():
        v = response_values(critic, b.input_ids, b.attention_mask, b.prompt_len)
        full = critic(b.input_ids, b.attention_mask)  # values of every column
        # unpadded reference: value before response token t = head(hidden of the token before it)
        for i, (p, r) in enumerate(zip(PROMPTS, RESPONSES)):
            h = critic.backbone(input_ids=torch.tensor([p + r])).last_hidden_state[0]
            ref = critic.value_head(h).squeeze(-1)[len(p) - 1:len(p) - 1 + len(r)]
            torch.testing.assert_close(v[i, :len(r)], ref, atol=1e-5, rtol=0)
            assert (v[i, len(r):] == 0).all()
    torch.testing.assert_close(v * b.response_mask, full[:, b.prompt_len - 1:-1] * b.response_mask, atol=1e-6, rtol=0)
    assert critic.value_head.bias.item() == 0.0
    critic.save_pretrained(str(tmp_path / "critic"))
    loaded = Critic.from_pretrained(str(tmp_path / "critic"))
    with torch.no_grad():
        torch.testing.assert_close(response_values(loaded, b.input_ids, b.attention_mask, b.prompt_len), v)
    with pytest.raises(FileNotFoundError, match="not a saved critic"):
        Critic.from_pretrained(str(tiny_model_dir))


def test_critic_lora_and_checkpointing(tiny_model_dir, tmp_path):
    critic = Critic.from_model(str(tiny_model_dir), lora=LoraSpec(rank=4, alpha=8), gradient_checkpointing=True)
    critic.train()
    trainable = {n for n, p in critic.named_parameters() if p.requires_grad}
    assert {"value_head.weight", "value_head.bias"} <= trainable
    assert all("lora_" in n or n.startswith("value_head") for n in trainable)
    b = _batch()
    v = response_values(critic, b.input_ids, b.attention_mask, b.prompt_len)
    ((v - 1.0) ** 2 * b.response_mask).sum().backward()
    assert critic.value_head.weight.grad is not None
    with torch.no_grad():
        for n, p in critic.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
        critic.eval()
        v = response_values(critic, b.input_ids, b.attention_mask, b.prompt_len)
    critic.save_pretrained(str(tmp_path / "lora_critic"))
    assert (tmp_path / "lora_critic" / "adapter_config.json").exists()
    loaded = Critic.from_pretrained(str(tmp_path / "lora_critic"))
    loaded.eval()
    assert loaded.is_lora
    with torch.no_grad():
        torch.testing.assert_close(response_values(loaded, b.input_ids, b.attention_mask, b.prompt_len), v)
