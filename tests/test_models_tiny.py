"""The tiny local checkpoint: deterministic, loadable with the real loading code, Qwen-like tokens and template."""
from __future__ import annotations

import json

import pytest
import torch

from trainer.data.synthetic import generate_problems
from mathrl_core.models.loading import load_causal_lm, load_tokenizer
from trainer.models.tiny import ENDOFTEXT, IM_END, IM_START, build_model, save_tiny_checkpoint, train_tokenizer

pytestmark = pytest.mark.usefixtures("single_thread")

CORPUS = [p.question + "\n" + p.solution for p in generate_problems(300, seed=3)] + ["\\boxed{} <answer> 0123456789"]


def test_tokenizer_is_deterministic_and_round_trips(tmp_path):
    a = train_tokenizer(CORPUS, vocab_size=600)
    b = train_tokenizer(CORPUS, vocab_size=600)
    assert a.get_vocab() == b.get_vocab()
    assert 300 < len(a) <= 600
    text = "Mia has 12 apples. She buys 5 more: 12 + 5 = 17.\nThe answer is \\boxed{17}. ünïcödé ∑"
    ids = a(text)["input_ids"]
    assert a.decode(ids) == text
    assert [a.convert_ids_to_tokens(i) for i in ids[2:5]] == ["Ġ", "1", "2"]  # digits split one by one (Qwen2)
    a.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path), padding_side="left")
    assert loaded(text)["input_ids"] == ids
    assert loaded.padding_side == "left" and loaded.pad_token == ENDOFTEXT and loaded.eos_token == ENDOFTEXT
    for special in (IM_START, IM_END, ENDOFTEXT):
        assert len(loaded(special)["input_ids"]) == 1  # special tokens are atomic
    assert loaded.chat_template == a.chat_template
    assert load_tokenizer(str(tmp_path), padding_side="right").padding_side == "right"


def test_model_deterministic_given_seed():
    tok = train_tokenizer(CORPUS, vocab_size=600)
    state = torch.random.get_rng_state()
    m1, m2 = build_model(tok, seed=1), build_model(tok, seed=1)
    m3 = build_model(tok, seed=2)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is not consumed
    for (n, p1), p2, p3 in zip(m1.state_dict().items(), m2.state_dict().values(), m3.state_dict().values()):
        assert torch.equal(p1, p2), n
    assert not torch.equal(m1.model.embed_tokens.weight, m3.model.embed_tokens.weight)
    assert m1.config.vocab_size == len(tok)


def test_saved_checkpoint_loads_with_real_code(tiny_model_dir, tiny_tokenizer):
    cfg = json.loads((tiny_model_dir / "config.json").read_text())
    assert cfg["model_type"] == "qwen2" and cfg["hidden_size"] == 64 and cfg["num_hidden_layers"] == 2
    gen_cfg = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert set(gen_cfg["eos_token_id"]) == {tiny_tokenizer.convert_tokens_to_ids(IM_END),
                                            tiny_tokenizer.convert_tokens_to_ids(ENDOFTEXT)}
    model = load_causal_lm(str(tiny_model_dir))
    assert model.config.vocab_size == len(tiny_tokenizer)
    chat = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                              add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_save_is_reproducible(tmp_path):
    kw = dict(corpus=CORPUS, vocab_size=600, seed=5, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1)
    a = save_tiny_checkpoint(tmp_path / "a", **kw)
    b = save_tiny_checkpoint(tmp_path / "b", **kw)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    ma, mb = load_causal_lm(str(a)), load_causal_lm(str(b))
    assert all(torch.equal(x, y) for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))
