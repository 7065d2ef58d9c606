"""The upstream trainer releases the interop tests run, pinned, and how they are fetched from PyPI.

    python scripts/upstream.py fetch [DEST]      # default: <repo>/.venv/upstream (scripts/setup_venv.sh calls it)
    python scripts/upstream.py list              # the pins, one "name version" a line

Every release is installed on its own with ``pip install --no-deps --target DEST/<name>-<version>``, so several
versions of one package sit side by side and nothing of theirs enters the project's environment. A test puts
one of these folders, and the support folder of that package, first on the PYTHONPATH of a subprocess
(tests/upstream_harness.py) and runs the release's own code there: OpenRLHF's argparse definitions and remote
reward functions, verl's reward managers. Their heavy dependencies (vLLM, DeepSpeed, Ray, transformers, torch)
are the project's own; only what those modules import beyond them is in the support folders.

OpenRLHF publishes pure-Python wheels tagged cp311 only, so they are fetched for Python 3.11 whatever the
interpreter here is. Fetching is idempotent (a folder with its ``.complete`` marker is kept).
"""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = ROOT / ".venv" / "upstream"

# The first and the last release of each OpenRLHF flag generation (tests/test_interop_openrlhf.py parses the
# recipe with each): --bf16 + --prompt_max_len (0.9.0-0.9.1), --param_dtype (0.9.2-0.9.7), --max_new_tokens +
# --max_len (0.9.8-0.10.1), dotted flags (0.10.2-0.11.1; 0.11.0 is the tag the issue names), dotted +
# --actor.loss_agg_mode (0.11.2, the newest). 0.9.0 is the last release that sends a whole rollout batch in one
# request (RemoteRewardModel); 0.9.10 and 0.11.2 are tested on the per-sample agent path.
OPENRLHF = ("0.9.0", "0.9.1", "0.9.2", "0.9.7", "0.9.8", "0.9.10", "0.10.1", "0.10.2", "0.11.0", "0.11.1", "0.11.2")
OPENRLHF_WHOLE_BATCH = ("0.9.0",)  # RemoteRewardModel: one request per rollout batch
OPENRLHF_PER_SAMPLE = ("0.9.10", "0.11.2")  # SingleTurnAgentExecutor: one request per sample
# 0.6.1: legacy reward managers only; 0.7.0: the reward loop by default, the legacy path with
# reward_model.use_reward_loop=False; 0.9.1 (the newest): the reward loop only, config under `reward.`.
VERL = ("0.6.1", "0.7.0", "0.9.1")
PINS = {"openrlhf": OPENRLHF, "verl": VERL}

SUPPORT = {
    # openrlhf.utils imports math_utils (pylatexenc) from 0.10 on; a pure-Python dependency of openrlhf.
    "openrlhf": ("pylatexenc==2.11",),
    # verl's DataProto needs tensordict (0.10.0 is the newest verl allows), its configs omegaconf. omegaconf 2.3
    # needs the antlr 4.9 runtime, which would break math-verify (antlr 4.13) in the project's environment:
    # here it is seen only by the verl subprocesses, which do not grade (the reward service does, in its own
    # process).
    "verl": ("tensordict==0.10.0", "pyvers==0.1.0", "orjson==3.13.0", "importlib_metadata==10.2.0", "zipp==4.1.2",
             "omegaconf==2.3.0", "antlr4-python3-runtime==4.9.3", "codetiming==1.4.0"),
}
# Wheels published for one interpreter only (pure Python in fact): fetched for that interpreter.
BINARY_FOR = {"openrlhf": ("--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                           "--abi", "cp311", "--platform", "manylinux1_x86_64")}


def release_dir(dest: Path, name: str, version: str) -> Path:
    return Path(dest) / f"{name}-{version}"


def support_dir(dest: Path, name: str) -> Path:
    return Path(dest) / f"{name}-support"


def _jobs(dest: Path) -> list[tuple[Path, list[str]]]:
    jobs = [(release_dir(dest, name, v), [*BINARY_FOR.get(name, ()), f"{name}=={v}"])
            for name, versions in PINS.items() for v in versions]
    jobs += [(support_dir(dest, name), list(reqs)) for name, reqs in SUPPORT.items()]
    return jobs


def _install(target: Path, args: list[str]) -> str:
    marker = target / ".complete"
    want = " ".join(args)
    if marker.is_file() and marker.read_text() == want:
        return f"kept {target.name}"
    subprocess.run(["rm", "-rf", str(target)], check=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target), *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    marker.write_text(want)
    return f"installed {target.name}"


def fetch(dest: Path = DEFAULT_DEST, parallel: int = 4) -> None:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(parallel) as pool:
        for line in pool.map(lambda job: _install(*job), _jobs(dest)):
            print(f"[upstream] {line}", flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["fetch"]:
        fetch(Path(argv[1]) if len(argv) > 1 else DEFAULT_DEST)
        return 0
    if argv[:1] == ["list"]:
        for name, versions in PINS.items():
            for v in versions:
                print(name, v)
        return 0
    print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
