"""End to end on CPU through the real HTTP reward service: PPO (critic + reference) and GRPO tiny runs,
resume after a SIGKILL reproducing the uninterrupted run, and a reward service that goes down."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reward_service.client import RewardServiceUnavailable, start_service
from trainer import checkpoint
from trainer.build import build_run
from trainer.config import RLConfig
from trainer.config_tree import load_config
from trainer.tracking import read_metrics

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _overrides(model_dir, out_dir, url, extra=()):
    return [f"model.pretrain={model_dir}", "model.tiny=null", f"logging.output_dir={out_dir}",
            f"reward.url={url}", "logging.progress_bar=false", "logging.tensorboard=false",
            "rollout.prompts_per_step=2", "rollout.max_new_tokens=16", "data.synthetic.n=64", *extra]


def _finite_losses(rows, keys):
    for row in rows:
        for k in keys:
            assert k in row and row[k] is not None and math.isfinite(row[k]), (k, row.get(k))


def test_grpo_tiny_recipe_end_to_end(tiny_model_dir, reward_url, tmp_path):
    cfg = load_config(RLConfig, REPO / "recipes/tiny_cpu_grpo.yaml",
                      _overrides(tiny_model_dir, tmp_path, reward_url, ["train.total_steps=2"]))
    loop = build_run(cfg)
    loop.run()
    loop.tracker.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2]
    _finite_losses(rows, ["policy/pg_loss", "policy/entropy", "policy/grad_norm", "reward/mean"])
    for r in rows:
        assert r["reward/accuracy"] + r["reward/wrong_rate"] + r["reward/no_answer_rate"] == pytest.approx(1.0)
        assert r["time/generate"] > 0 and r["throughput/tokens_per_s"] > 0
        # one on-policy update per rollout: no separate old-log-prob pass, the importance ratio is exactly 1
        assert r["time/reference"] < 0.05 and r["policy/ratio_max"] == r["policy/ratio_min"] == 1.0
        assert "rollout/logprob_max_abs_diff" not in r
    assert checkpoint.latest(tmp_path).name == "step_000002"


def test_skipping_the_old_logprob_pass_gives_the_same_update(tiny_model_dir, reward_url, tmp_path):
    """The on-policy shortcut (old log-probs = the update's own, detached) against the recomputed old log-probs:
    same samples, same rewards, the same weights after the step. (An entropy bonus makes the step move the
    weights even when every group's rewards are equal, as they often are for the random tiny model.)"""
    import torch

    params, rows = [], []
    for skip in (True, False):
        cfg = load_config(RLConfig, REPO / "recipes/tiny_cpu_grpo.yaml",
                          _overrides(tiny_model_dir, tmp_path / str(skip), reward_url,
                                     ["train.total_steps=1", "algorithm.entropy_coef=0.01"]))
        loop = build_run(cfg)
        assert loop.old_logprobs_from_update  # the recipe is one epoch of one minibatch, no KL, HF rollout
        loop.old_logprobs_from_update = skip
        rows.append(loop.train_step(1))
        loop.tracker.close()
        params.append({k: v.detach().clone() for k, v in loop.policy.model.named_parameters()})
    assert rows[0]["reward/mean"] == rows[1]["reward/mean"] and rows[0]["response/length_mean"] == rows[1]["response/length_mean"]
    # HF rollout shares the policy's weights: sampling log-probs equal the trainer's recomputation
    assert rows[1]["rollout/logprob_max_abs_diff"] < 1e-4
    assert rows[1]["policy/ratio_max"] == pytest.approx(1.0, abs=1e-5)
    for k, v in params[0].items():
        torch.testing.assert_close(v, params[1][k], rtol=0, atol=1e-6, msg=k)
    assert any(not torch.equal(v, p) for (k, v), p in zip(params[0].items(), _initial(tiny_model_dir)))


def _initial(model_dir):
    from transformers import AutoModelForCausalLM

    return [p.detach() for p in AutoModelForCausalLM.from_pretrained(str(model_dir)).parameters()]


def _run_cli(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "trainer.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _policy_weights(out_dir):
    ckpt = checkpoint.latest(out_dir)
    state = {}
    for f in (ckpt / "policy" / "model").glob("*.safetensors"):
        state.update(load_file(str(f)))
    return state


def _comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "throughput/"))} for r in rows]


def test_ppo_resume_after_kill_matches_uninterrupted_run(tiny_model_dir, reward_url, tmp_path):
    """Run A: 4 PPO steps uninterrupted. Run B: killed with SIGKILL after the step-2 checkpoint, then
    ``--resume``. Parameters, optimizer-driven updates and every logged metric must match."""
    recipe = str(REPO / "recipes/tiny_cpu_ppo.yaml")
    base = ["train.total_steps=4", "logging.save_steps=2"]
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a = _run_cli(["--config", recipe, *_overrides(tiny_model_dir, a_dir, reward_url, base)])
    out_a, _ = a.communicate(timeout=600)
    assert a.returncode == 0, out_a[-3000:]

    b = _run_cli(["--config", recipe, *_overrides(tiny_model_dir, b_dir, reward_url, base)])
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        latest = b_dir / "checkpoints" / "latest"
        if latest.exists() and latest.read_text().strip() == "step_000002":
            break
        assert b.poll() is None, b.stdout.read()[-3000:]
        time.sleep(0.2)
    b.send_signal(signal.SIGKILL)
    b.wait(30)
    assert checkpoint.latest(b_dir).name == "step_000002"

    c = _run_cli(["--config", recipe, "--resume", *_overrides(tiny_model_dir, b_dir, reward_url, base)])
    out_c, _ = c.communicate(timeout=600)
    assert c.returncode == 0, out_c[-3000:]
    assert "resumed from" in out_c

    rows_a, rows_b = read_metrics(a_dir), read_metrics(b_dir)
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4]
    _finite_losses(rows_a, ["policy/pg_loss", "critic/value_loss", "policy/kl", "critic/explained_variance"])
    for ra, rb in zip(_comparable(rows_a), _comparable(rows_b)):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-6), (ra["step"], k)
    wa, wb = _policy_weights(a_dir), _policy_weights(b_dir)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)
    init = load_file(str(next(Path(tiny_model_dir).glob("*.safetensors"))))
    changed = [k for k in wa if k in init and not torch.equal(wa[k], init[k])]
    assert changed, "training did not change the policy"


def test_reward_service_down_stops_run_with_checkpoint_intact(tiny_model_dir, tmp_path):
    svc = start_service(workers=1)
    cfg = load_config(RLConfig, REPO / "recipes/tiny_cpu_grpo.yaml",
                      _overrides(tiny_model_dir, tmp_path, svc.url,
                                 ["train.total_steps=3", "logging.save_steps=1", "reward.retries=2"]))
    loop = build_run(cfg)
    loop.total_steps = 1
    loop.run()  # step 1 trains and checkpoints
    svc.stop()
    loop.total_steps = 3
    t0 = time.monotonic()
    with pytest.raises(RewardServiceUnavailable, match="unreachable"):
        loop.run()
    assert time.monotonic() - t0 < 120
    loop.tracker.close()
    ckpt = checkpoint.latest(tmp_path)
    assert ckpt.name == "step_000001"
    assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == 1
    assert [r["step"] for r in read_metrics(tmp_path)] == [1]


@pytest.mark.parametrize("extra,expect", [
    (["algorithm.advantage=rloo", "algorithm.dynamic_sampling=true", "algorithm.dynamic_sampling_max_rounds=2"],
     ["dynamic_sampling/rounds", "dynamic_sampling/kept_groups_frac"]),
    (["algorithm.advantage=reinforce_pp", "algorithm.kl_coef=0.05", "algorithm.kl_estimator=k2",
      "algorithm.overlong_buffer=4", "algorithm.overlong_filter=true"], ["policy/kl", "reward/shaped_mean"]),
    (["algorithm.advantage=dr_grpo", "algorithm.loss_agg=seq_sum", "algorithm.tis_cap=2.0",
      "algorithm.dual_clip=3.0", "algorithm.clip_high=0.28", "algorithm.ratio_early_stop=5.0",
      "algorithm.entropy_coef=0.01"], ["policy/early_stopped_microbatches", "policy/dual_clip_frac"]),
    (["algorithm.advantage=grpo", "model.lora.rank=4", "algorithm.kl_coef=0.1", "algorithm.kl_mode=loss",
      "algorithm.kl_estimator=k3", "train.ppo_epochs=2", "train.minibatch_size=4", "train.micro_batch_size=2"],
     ["policy/kl", "policy/clip_frac"]),
    (["algorithm.advantage=reinforce_baseline", "train.lr_scheduler=cosine", "train.warmup_ratio=0.5"],
     ["policy/lr"]),
])
def test_loop_options_run_one_step(tiny_model_dir, reward_url, tmp_path, extra, expect):
    """Every algorithm option wired through the real loop: one step runs, its metrics are finite."""
    cfg = load_config(RLConfig, REPO / "recipes/tiny_cpu_grpo.yaml",
                      _overrides(tiny_model_dir, tmp_path, reward_url, ["train.total_steps=1", *extra]))
    loop = build_run(cfg)
    loop.run()
    loop.tracker.close()
    (row,) = read_metrics(tmp_path)
    for k in expect + ["policy/grad_norm", "reward/mean", "advantage/abs_mean"]:
        assert k in row and row[k] is not None and math.isfinite(row[k]), (k, row.get(k))
