"""The trainer under faults, with real processes: a trainer killed by SIGKILL or SIGTERM takes its auto-started
reward service (fork server, resource tracker, grading workers) with it and frees the port; a service killed
outright takes its own workers; a run with a bearer token leaves no copy of it on disk."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import procs
from reward_service.client import start_service

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")]


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def _wait_for(pattern: str, log: Path, proc: subprocess.Popen, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(errors="replace"))
        if m:
            return m
        assert proc.poll() is None, f"rl-train exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_trainer_takes_its_reward_service_with_it(tiny_model_dir, tmp_path, sig):
    """rl-train with no reward.url starts its own service; kill the trainer mid-run and every process of the
    service's tree ends within a bounded time, and nothing listens on its port any more."""
    log = tmp_path / "train.log"
    args = ["--config", str(REPO / "recipes/tiny_cpu_grpo.yaml"), f"model.pretrain={tiny_model_dir}",
            "model.tiny=null", f"logging.output_dir={tmp_path / 'run'}", "reward.workers=1",
            "logging.progress_bar=false", "logging.tensorboard=false", "train.total_steps=10000",
            "logging.save_steps=0", "rollout.max_new_tokens=8"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with log.open("wb") as f:
        trainer = subprocess.Popen([sys.executable, "-m", "trainer.cli", *args], cwd=REPO, env=env,
                                   stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    service: list = []
    try:
        port = int(_wait_for(r"started a local reward service at http://127\.0\.0\.1:(\d+)", log, trainer, 300)[1])
        metrics = tmp_path / "run" / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (metrics.is_file() and metrics.stat().st_size) and time.monotonic() < deadline:
            assert trainer.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)  # a step is logged: the service has graded, the run is training
        (svc_pid,) = [p for p in procs.children(trainer.pid) if "reward_service.cli" in procs.cmdline(p)]
        service = procs.tree(svc_pid)
        names = " | ".join(procs.cmdline(p) for p, _ in service)
        assert len(service) >= 3 and "forkserver" in names, names  # service, fork server, >= 1 worker
        assert not _port_closed(port)

        trainer.send_signal(sig)
        trainer.wait(30)
        left = procs.survivors(service, timeout=40)
        assert not left, f"alive after the trainer died: {[procs.cmdline(p) for p, _ in left]}"
        assert _port_closed(port)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait(30)
        procs.kill_all(service)


def test_service_killed_outright_takes_its_workers(tmp_path):
    """SIGKILL of the service itself (the OOM killer, an operator): its fork server sees it gone and exits,
    the grading workers die with the fork server, the resource tracker exits."""
    svc = start_service(workers=2, log_path=str(tmp_path / "svc.log"))
    tree = procs.tree(svc.process.pid)
    try:
        assert len(tree) >= 4, [procs.cmdline(p) for p, _ in tree]  # service, fork server, 2 workers
        svc.process.kill()
        svc.process.wait(10)
        left = procs.survivors(tree, timeout=30)
        assert not left, f"alive after the service died: {[procs.cmdline(p) for p, _ in left]}"
    finally:
        procs.kill_all(tree)
        svc.stop()


def test_reward_token_is_never_written_to_disk(tiny_model_dir, tmp_path, monkeypatch):
    """A run against a token-protected service (the token given as a config value): config.yaml, metrics,
    TensorBoard, checkpoints and wandb's files (offline) hold no copy of it."""
    from trainer import cli

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    secret = "tok-" + os.urandom(8).hex()
    svc = start_service(workers=1, token=secret, log_path=str(tmp_path / "svc.log"))
    out = tmp_path / "run"
    try:
        code = cli.main(["--config", str(REPO / "recipes/tiny_cpu_grpo.yaml"), f"model.pretrain={tiny_model_dir}",
                         "model.tiny=null", f"logging.output_dir={out}", f"reward.url={svc.url}",
                         f"reward.token={secret}", "logging.progress_bar=false", "logging.tensorboard=true",
                         "train.total_steps=1", "logging.save_steps=1", "rollout.max_new_tokens=8",
                         "logging.wandb=true"])
    finally:
        svc.stop()
    assert code == 0
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert (out / "config.yaml").is_file() and (out / "metrics.jsonl").is_file()
    assert any(p.name == "trainer_state.json" for p in files) and any("tfevents" in p.name for p in files)
    assert any(p.suffix == ".wandb" for p in files)  # wandb's offline record: the config is in it
    leaks = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert "reward:" in (out / "config.yaml").read_text() and "<redacted>" in (out / "config.yaml").read_text()
