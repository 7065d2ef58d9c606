"""OpenRLHF against this project, with OpenRLHF's own code (releases pinned in scripts/upstream.py).

- recipes/openrlhf_simplerl_zero.sh: the command it prints for each release is parsed by that release's own
  train_ppo_ray argparse definitions and checks (this is what catches a renamed flag), and every value is the
  SimpleRL-Zero recipe's (recipes/simplerl_zero_ppo.yaml).
- OpenRLHF 0.9.0's whole-batch path (Ray RemoteRewardModel -> remote_rm_fn_ray -> request_api_wrapper ->
  update_samples_with_rewards) and the per-sample agent path of 0.9.10 and 0.11.2 (SingleTurnAgentExecutor ->
  _process_response_into_experience), each against a live reward service with default settings.
How each script drives the upstream code, and what stands in for GPU-only parts, is in tests/interop/*.py.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import upstream_harness as up
from trainer.config import RLConfig
from trainer.config_tree import load_config

sys.path.insert(0, str(up.INTEROP))
import cases  # noqa: E402  (tests/interop/cases.py, shared with the scripts)

ROOT = up.REPO
RECIPE = ROOT / "recipes" / "openrlhf_simplerl_zero.sh"
PY = sys.executable


def _release_key(v: str) -> tuple:
    return tuple(int(x) for x in v.split("."))


def recipe(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("OPENRLHF_VERSION", "OPENRLHF_FLAGS", "REWARD_URL")}
    e.update({"PYTHON": PY, "REWARD_HOST": "10.0.0.5", "REWARD_PORT": "5000", **(env or {})})
    return subprocess.run(["bash", str(RECIPE), *args], capture_output=True, text=True, env=e, timeout=timeout,
                          cwd=ROOT)


def openrlhf_argv(stdout: str) -> list[str]:
    """OpenRLHF's arguments from the recipe's dry-run (its last line: PYTHON -m openrlhf.cli.train_ppo_ray ...)."""
    cmd = shlex.split(stdout.strip().splitlines()[-1])
    assert cmd[1:3] == ["-m", "openrlhf.cli.train_ppo_ray"], cmd[:3]
    return cmd[3:]


def expected_args(version: str, url: str, data: str, save: str) -> dict:
    """What OpenRLHF ``version`` must read from the recipe: recipes/simplerl_zero_ppo.yaml in its spelling."""
    cfg = load_config(RLConfig, ROOT / "recipes" / "simplerl_zero_ppo.yaml")
    m, r, t, a, ray = cfg.model, cfg.rollout, cfg.train, cfg.algorithm, cfg.ray
    prompt_tokens, new_tokens = cfg.data.max_prompt_tokens, r.max_new_tokens
    assert (t.lr_scheduler, t.min_lr_ratio, m.dtype, m.attn_implementation) == (
        "cosine", 0.1, "bfloat16", "flash_attention_2")  # cosine_with_min_lr's min_lr = 0.1 x lr, bf16, flash-attn
    # (flat name up to 0.10.1, dotted name from 0.10.2, value)
    both = [
        ("actor_num_nodes", "actor.num_nodes", 1), ("actor_num_gpus_per_node", "actor.num_gpus_per_node", ray.actor_ranks),
        ("ref_num_gpus_per_node", "ref.num_gpus_per_node", ray.ref_ranks),
        ("colocate_actor_ref", "train.colocate_actor_ref", ray.colocate_actor_ref),
        ("critic_num_gpus_per_node", "critic.num_gpus_per_node", ray.critic_ranks),
        ("vllm_num_engines", "vllm.num_engines", r.num_engines),
        ("vllm_tensor_parallel_size", "vllm.tensor_parallel_size", r.tensor_parallel_size),
        ("pretrain", "actor.model_name_or_path", m.pretrain),
        ("critic_pretrain", "critic.model_name_or_path", m.pretrain),  # OpenRLHF's rewrite: the critic from the policy
        ("remote_rm_url", "reward.remote_url", [url]),
        ("prompt_data", "data.prompt_dataset", data), ("input_key", "data.input_key", "problem"),
        ("label_key", "data.label_key", "answer"), ("apply_chat_template", "data.apply_chat_template", True),
        ("max_samples", "data.max_samples", 100000),
        ("rollout_batch_size", "rollout.batch_size", r.prompts_per_step),
        ("n_samples_per_prompt", "rollout.n_samples_per_prompt", r.n),
        ("micro_rollout_batch_size", "rollout.micro_batch_size", 2),
        ("temperature", "rollout.temperature", r.temperature), ("top_p", "rollout.top_p", r.top_p),
        ("train_batch_size", "train.batch_size", t.minibatch_size),
        ("micro_train_batch_size", "train.micro_batch_size", t.micro_batch_size),
        ("max_epochs", "train.max_epochs", t.ppo_epochs), ("num_episodes", "train.num_episodes", t.episodes),
        ("advantage_estimator", "algo.advantage.estimator", a.advantage), ("gamma", "algo.advantage.gamma", a.gamma),
        ("lambd", "algo.advantage.lambd", a.lam), ("eps_clip", "actor.eps_clip", a.clip_low),
        ("eps_clip_low_high", "actor.eps_clip_low_high", [a.clip_low, a.clip_high]),
        ("value_clip", "critic.value_clip", a.value_clip),
        ("init_kl_coef", "algo.kl.init_coef", a.kl_coef), ("kl_estimator", "algo.kl.estimator", a.kl_estimator),
        ("use_kl_loss", "algo.kl.use_loss", a.kl_mode == "loss"), ("kl_target", "algo.kl.target", None),
        ("actor_learning_rate", "actor.adam.lr", t.actor_lr), ("critic_learning_rate", "critic.adam.lr", t.critic_lr),
        ("zero_stage", "ds.zero_stage", t.zero_stage),
        ("gradient_checkpointing", "actor.gradient_checkpointing_enable", m.gradient_checkpointing),
        ("attn_implementation", "ds.attn_implementation", m.attn_implementation),
        ("normalize_reward", "reward.normalize_enable", False),
        ("save_path", "ckpt.output_dir", f"{save}/model"), ("ckpt_path", "ckpt.path", f"{save}/ckpt"),
        ("save_steps", "ckpt.save_steps", cfg.logging.save_steps), ("max_ckpt_num", "ckpt.max_num", cfg.logging.keep_checkpoints),
        ("load_checkpoint", "ckpt.load_enable", True), ("save_hf_ckpt", "ckpt.save_hf", True),
        ("use_tensorboard", "logger.tensorboard_dir", f"{save}/tensorboard"),
    ]
    v = _release_key(version)
    dotted = v >= (0, 10, 2)
    out = {(d if dotted else f): value for f, d, value in both}
    if dotted:  # optimizer and scheduler per role
        for role in ("actor", "critic"):
            out.update({f"{role}.adam.betas": t.adam_betas, f"{role}.adam.weight_decay": t.weight_decay,
                        f"{role}.lr_scheduler": "cosine_with_min_lr", f"{role}.lr_warmup_ratio": t.warmup_ratio,
                        f"{role}.min_lr_ratio": t.min_lr_ratio, f"{role}.max_norm": t.max_grad_norm})
        out.update({"data.max_len": prompt_tokens + new_tokens, "rollout.max_new_tokens": new_tokens,
                    "ds.param_dtype": "bf16"})
        if v >= (0, 11, 2):
            assert a.loss_agg == "seq_mean_token_mean"
            out["actor.loss_agg_mode"] = "seq-mean-token-mean"
    else:
        out.update({"adam_betas": t.adam_betas, "l2": t.weight_decay, "lr_scheduler": "cosine_with_min_lr",
                    "lr_warmup_ratio": t.warmup_ratio, "max_norm": t.max_grad_norm})
        if v >= (0, 9, 8):
            out.update({"max_len": prompt_tokens + new_tokens, "max_new_tokens": new_tokens})
        else:
            out.update({"prompt_max_len": prompt_tokens, "generate_max_len": new_tokens})
        out.update({"param_dtype": "bf16"} if v >= (0, 9, 2) else {"bf16": True})
    return out


# ------------------------------------------------------------------------------------ the recipe's flags
@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory) -> dict:
    """For every pinned release: the recipe's dry-run with that release installed (detected, not told), and what
    the release's own argparse made of the printed command (one interpreter parses them all)."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for version in up.PINS.OPENRLHF:
        root = up.release("openrlhf", version)
        env = {"OPENRLHF_PYTHON": PY, "PYTHONPATH": os.pathsep.join([str(root), str(up.support("openrlhf"))]),
               "OUTPUT_ROOT": str(out / version)}
        r = recipe("dry-run", env=env)
        assert r.returncode == 0, r.stderr
        runs[version] = {"root": str(root), "argv": openrlhf_argv(r.stdout),
                         "save": str(out / version / "openrlhf_simplerl_zero")}
    jobs = out / "jobs.json"
    jobs.write_text(json.dumps([{"root": run["root"], "argv": run["argv"]} for run in runs.values()]))
    parsed = up.run_upstream("openrlhf_argparse.py", [up.support("openrlhf")], str(jobs))
    for run, result in zip(runs.values(), parsed):
        run["parsed"] = result
    return runs


@pytest.mark.parametrize("version", up.PINS.OPENRLHF)
def test_recipe_flags_parse_with_each_release(version, recipe_runs):
    """The recipe detects the installed release and its command parses with that release's own argparse."""
    run = recipe_runs[version]
    argv, parsed = run["argv"], run["parsed"]
    assert parsed["version"] == version
    assert "error" not in parsed, parsed["error"]
    assert parsed["file"].startswith(run["root"])
    flags = [a for a in argv if a.startswith("--")]
    assert len(flags) == len(set(flags)), "a flag is given twice"
    assert not set(flags) - set(parsed["options"]), "abbreviated or unknown flags"  # argparse allows prefixes
    data = Path(argv[argv.index("--data.prompt_dataset" if "--data.prompt_dataset" in argv else "--prompt_data") + 1])
    want = expected_args(version, "http://10.0.0.5:5000/get_reward", str(data), run["save"])
    got = {k: parsed["args"].get(k, "<missing>") for k in want}
    assert got == want
    first = json.loads(data.open().readline())  # the input and label keys exist in the prompt file
    assert first["problem"] and first["answer"]


def test_recipe_version_choice(tmp_path):
    env = {"OUTPUT_ROOT": str(tmp_path), "OPENRLHF_PYTHON": str(tmp_path / "no-python")}

    def flags(**extra):
        r = recipe("print", env={**env, **extra})
        assert r.returncode == 0, r.stderr
        return r, set(a for a in openrlhf_argv(r.stdout) if a.startswith("--"))

    r, newest = flags()  # nothing installed: the newest tested release, said so
    assert "--reward.remote_url" in newest and "--actor.loss_agg_mode" in newest
    assert f"flags for OpenRLHF {up.PINS.OPENRLHF[-1]}" in r.stderr  # NEWEST_TESTED
    assert "--bf16" in flags(OPENRLHF_FLAGS="v0.9")[1] and "--prompt_max_len" in flags(OPENRLHF_FLAGS="v0.9")[1]
    assert flags(OPENRLHF_FLAGS="v0.11")[1] == flags(OPENRLHF_VERSION="0.11.0")[1] == newest - {"--actor.loss_agg_mode"}
    mid = flags(OPENRLHF_VERSION="0.10.1.post2")[1]  # post releases sort before the next release
    assert {"--param_dtype", "--max_new_tokens", "--remote_rm_url"} <= mid and "--bf16" not in mid
    assert "--actor.loss_agg_mode" not in flags(OPENRLHF_VERSION="0.10.3")[1]
    for bad, message in (("0.8.11", "older than 0.9.0"), ("latest", "not an OpenRLHF release number")):
        r = recipe("print", env={**env, "OPENRLHF_VERSION": bad})
        assert r.returncode == 2 and message in r.stderr
    r = recipe("run", env=env)  # never guesses for a real run
    assert r.returncode == 2 and "openrlhf is not installed" in r.stderr
    r = recipe("print", env={**env, "REWARD_URL": "http://rs:9000"})  # a running service: one command only
    assert len(r.stdout.strip().splitlines()) == 1 and "--reward.remote_url http://rs:9000/get_reward" in r.stdout


def test_recipe_header_names_the_tested_releases():
    """The recipe's provenance comment lists exactly the releases the flag test parses it with."""
    text = RECIPE.read_text()
    line = " ".join(l.lstrip("# ").strip() for l in text.splitlines() if l.startswith("#"))
    listed = line.split("the PyPI releases", 1)[1].split("and checks every value")[0]
    versions = [v.strip(" ,") for v in listed.replace(" and ", ", ").split(",") if v.strip(" ,")]
    assert versions == list(up.PINS.OPENRLHF)


# ------------------------------------------------------------------------------ the reward calls themselves
@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A tiny ChatML tokenizer whose template adds Qwen2.5-Math's boxed system prompt (as the recipe's model)."""
    from trainer.models.tiny import default_corpus, train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(default_corpus(), vocab_size=1000, default_system_prompt=cases.SYSTEM).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def service():
    from reward_service.client import start_service

    with start_service(workers=2, args=["--log-level", "warning"]) as svc:  # default limits and scheme
        yield svc


@pytest.fixture(scope="module")
def whole_batch(service, tokenizer_dir):
    """OpenRLHF 0.9.0 on Ray: the SAMPLES batch and a 1024 x 8 batch, each in one request (one Ray session)."""
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    try:
        (version,) = up.PINS.OPENRLHF_WHOLE_BATCH
        return up.run_upstream("openrlhf_batch_rm.py", up.roots("openrlhf", version), service.url + "/get_reward",
                               str(tokenizer_dir), "samples", "batch8192", env={"RAY_TMPDIR": ray_tmp}, timeout=900)
    finally:
        subprocess.run(["rm", "-rf", ray_tmp])


def _expected_samples(n: int) -> list[float]:
    return [reward for *_, reward in cases.SAMPLES for _ in range(n)]


@pytest.mark.slow
def test_openrlhf_0_9_0_whole_batch_request(whole_batch):
    out = whole_batch["samples"]
    assert "error" not in out, out
    assert out["rewards"] == _expected_samples(2)
    assert out["scores"] == [1.0 if r == 1.0 else 0.0 for r in out["rewards"]]  # 1/0 accuracy for dynamic filtering
    logs = out["extra_logs"]
    assert logs["no_answer"] == [1.0 if r == -1.0 else 0.0 for r in out["rewards"]]
    assert set(logs) >= {"accuracy", "no_answer", "timeout", "prompt_not_found"} and not any(logs["prompt_not_found"])
    assert out["queries"][0].startswith(out["prompts"][0]) and out["queries"][0].endswith("<|endoftext|>")


@pytest.mark.slow
def test_openrlhf_0_9_0_rollout_batch_of_8192_in_one_request(whole_batch):
    out = whole_batch["batch8192"]
    assert "error" not in out, out["error"]
    want = [reward for *_, rewards in cases.big_batch(1024, 8) for reward in rewards]
    assert out["n"] == 8192 and out["rewards"] == want
    print(f"OpenRLHF 0.9.0 batch of 8192 queries ({out['body_bytes'] / 1e6:.1f} MB): {out['seconds']:.1f} s")


@pytest.fixture(scope="module")
def agent_runs(service, tokenizer_dir):
    """The per-sample path of each release, run once per release when a test first asks for it."""
    runs = {}

    def run(version: str) -> dict:
        if version not in runs:
            wanted = ["samples"] + (["truncated"] if version == up.PINS.OPENRLHF[-1] else [])
            runs[version] = up.run_upstream("openrlhf_agent.py", up.roots("openrlhf", version),
                                            service.url + "/get_reward", str(tokenizer_dir), *wanted)
        return runs[version]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("version", up.PINS.OPENRLHF_PER_SAMPLE)
def test_openrlhf_agent_path_per_sample(agent_runs, version):
    out = agent_runs(version)
    assert out["version"] == version
    got = out["samples"]
    assert [s["reward"] for s in got] == [reward for *_, reward in cases.SAMPLES]
    assert [s["score"] for s in got] == [1.0 if s["reward"] == 1.0 else 0.0 for s in got]
    for s in got:  # extra_logs reach the Experience's info (logged by OpenRLHF)
        assert s["extra_logs"]["no_answer"] == (1.0 if s["reward"] == -1.0 else 0.0)
        assert s["extra_logs"]["prompt_not_found"] == 0.0 and not s["truncated_prompt"]
        assert s["query"].startswith(s["prompt"])


@pytest.mark.slow
def test_openrlhf_truncated_prompt_grades_the_response(agent_runs):
    (s,) = agent_runs(up.PINS.OPENRLHF[-1])["truncated"]
    assert s["truncated_prompt"] and not s["query"].startswith(s["prompt"])  # OpenRLHF cut the prompt's start
    assert "\\boxed{}" in s["query"]  # the instruction's empty box is in the query
    assert s["reward"] == cases.TRUNCATED[-1]
    assert s["extra_logs"]["prompt_not_found"] == 1.0  # and the service says so


# ------------------------------------------------------------------------------ the wrapper's process handling
STAND_IN = '''"""Stands in for `python -m openrlhf.cli.train_ppo_ray` (which needs GPUs): it parses its arguments with
the installed OpenRLHF's own argparse definitions, then posts one sample to the reward URL it was given the way
OpenRLHF does (utils/agent.py), and writes the answer to $STAND_IN_OUT."""
import asyncio, json, os, sys
sys.path.insert(0, os.environ["TESTS_DIR"])
from upstream_harness import main_block_args
import openrlhf
from openrlhf.utils.agent import SingleTurnAgentExecutor
args, _ = main_block_args(os.path.join(openrlhf.__path__[0], "cli", "train_ppo_ray.py"), sys.argv[1:])
rows = [json.loads(line) for line, _ in zip(open(args.data.prompt_dataset), range(1))]
prompt = "<|im_start|>user\\n" + rows[0][args.data.input_key] + "<|im_end|>\\n<|im_start|>assistant\\n"
answer = "So the answer is $\\\\boxed{" + str(rows[0][args.data.label_key]) + "}$."
executor = SingleTurnAgentExecutor(args.reward.remote_url)
out = asyncio.run(executor._fetch_rewards_via_http([prompt + answer], [prompt], [rows[0][args.data.label_key]]))
open(os.environ["STAND_IN_OUT"], "w").write(json.dumps(out))
'''


@pytest.mark.slow
def test_wrapper_starts_the_service_for_openrlhf_and_stops_it(tmp_path):
    """`run`: the wrapper starts the reward service, waits for /health, runs OpenRLHF with the URL, and stops the
    service when OpenRLHF exits."""
    fake = tmp_path / "bin" / "openrlhf-python"  # OPENRLHF_PYTHON: runs the stand-in for `-m openrlhf.cli...`
    fake.parent.mkdir()
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    fake.write_text(f'#!/bin/sh\n[ "$1" = -m ] && shift 2 && exec {shlex.quote(PY)} {tmp_path}/stand_in.py "$@"\n'
                    f'exec {shlex.quote(PY)} "$@"\n')
    fake.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "answer.json"
    env = {"OPENRLHF_PYTHON": str(fake), "REWARD_HOST": "127.0.0.1", "REWARD_PORT": str(port), "REWARD_WORKERS": "1",
           "OUTPUT_ROOT": str(tmp_path / "runs"), "STAND_IN_OUT": str(out), "TESTS_DIR": str(up.TESTS),
           "PYTHONPATH": os.pathsep.join(map(str, up.roots("openrlhf", up.PINS.OPENRLHF[-1])))}
    r = recipe("run", env=env, timeout=300)
    assert r.returncode == 0, r.stderr + (tmp_path / "runs/openrlhf_simplerl_zero/reward_service.log").read_text()
    (answer,) = json.loads(out.read_text())
    assert answer["rewards"] == [1.0]  # simplerl: the right answer
    assert answer["extra_logs"]["prompt_not_found"] == [0.0]  # the response was cut from its prompt
    deadline = time.time() + 20  # the wrapper stops the service it started
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.2)
    else:
        pytest.fail("the reward service is still listening after the wrapper exited")
