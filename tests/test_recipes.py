"""recipes/: every YAML dry-runs through the real CLI (``rl-train --dry-run`` or ``rl-sft --dry-run``, no GPU, no
hub, no network) and the printed plan matches the hyper-parameters each recipe states (and cites); every shell
wrapper parses (``bash -n``) and builds the commands it promises; the 4-bit loading the GSM8K LoRA recipe needs
fails clearly on CPU. The OpenRLHF wrapper is tested with OpenRLHF's own code in test_interop_openrlhf.py."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from trainer.config import RLConfig
from trainer.config_tree import ConfigError, load_config
from trainer.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
YAMLS = sorted(p.name for p in RECIPES.glob("*.yaml"))
SCRIPTS = sorted(p.name for p in RECIPES.glob("*.sh"))
PY = sys.executable


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory) -> Path:
    """A stand-in for the user's long-CoT SFT file, in the format simplerl_sft.yaml documents."""
    path = tmp_path_factory.mktemp("sft") / "long_cot.jsonl"
    rows = [{"question": f"What is {i} + {i}?",
             "response": f"We add {i} and {i}. Wait, let me verify: {i} + {i} = {2 * i}. \\boxed{{{2 * i}}}"}
            for i in range(128)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def caller_inputs(name: str, sft_file: Path) -> list[str]:
    """What a recipe leaves to its caller: the quickstart fills in its data, SFT data is the user's file."""
    return {"quickstart_grpo.yaml": ["data.train=synthetic"], "tool_demo_grpo.yaml": ["data.train=synthetic"],
            "simplerl_sft.yaml": [f"data.train={sft_file}"], "tool_demo_sft.yaml": [f"data.train={sft_file}"]
            }.get(name, [])


def kind(name: str) -> str:
    """'rl' or 'sft': a recipe must be a valid config of exactly one of the two CLIs."""
    loads = []
    for k, cls in (("rl", RLConfig), ("sft", SFTConfig)):
        try:
            load_config(cls, RECIPES / name, ["data.train=synthetic"])
            loads.append(k)
        except ConfigError:
            pass
    assert len(loads) == 1, f"{name} loads as {loads or 'neither config'}"
    return loads[0]


def dry_run(name: str, sft_file: Path, capsys, extra: list[str] = ()) -> dict:
    from trainer import cli, sft_cli

    main = cli.main if kind(name) == "rl" else sft_cli.main
    rc = main(["--config", str(RECIPES / name), "--dry-run", *caller_inputs(name, sft_file), *extra])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out)


def rl_config(name: str) -> RLConfig:
    return load_config(RLConfig, RECIPES / name)


# ------------------------------------------------------------------------------------------------ every recipe
@pytest.mark.parametrize("name", YAMLS)
def test_recipe_dry_runs(name, sft_data, capsys):
    plan = dry_run(name, sft_data, capsys)
    if kind(name) == "sft":
        assert plan["total_steps"] >= 1 and plan["output"].endswith("/model")
        return
    cfg = load_config(RLConfig, RECIPES / name, caller_inputs(name, sft_data))
    r, t = cfg.rollout, cfg.train
    assert plan["samples_per_step"] == r.prompts_per_step * r.n
    assert plan["optimizer_updates_per_step"] == t.ppo_epochs * r.prompts_per_step * r.n // t.minibatch_size
    assert ("critic" in plan["roles"]) == (cfg.algorithm.advantage == "gae")
    assert ("reference" in plan["roles"]) == (cfg.algorithm.kl_coef > 0)
    if cfg.ray.enabled:
        from trainer.distributed.launch import validate_ray

        validate_ray(cfg)  # what the Ray launch checks before it places anything
        assert plan["resources"]["policy"]["ranks"] == cfg.ray.actor_ranks
        if cfg.ray.colocate_all:  # engine i sits on the policy's bundle i
            assert r.num_engines <= cfg.ray.actor_ranks and r.tensor_parallel_size == 1


@pytest.mark.parametrize("name", [n for n in YAMLS if kind(n) == "rl"])
def test_recipe_names_known_templates_schemes_and_benchmarks(name):
    from eval.benchmarks import BENCHMARKS
    from reward_service.rewards import BUILTIN_SCHEMES
    from mathrl_core.templates import TEMPLATES

    cfg = rl_config(name)
    assert cfg.data.template in TEMPLATES
    assert cfg.reward.scheme.removesuffix("+format") in {s.name for s in BUILTIN_SCHEMES}
    assert set(cfg.eval.benchmarks) <= set(BENCHMARKS)
    assert cfg.name == Path(name).stem  # run names match the file (and the wrappers' output folders)


# ------------------------------------------------------------------------------- the recipes' stated numbers
def test_simplerl_zero_plan(capsys, sft_data):
    plan = dry_run("simplerl_zero_ppo.yaml", sft_data, capsys)
    assert (plan["prompts_per_step"], plan["samples_per_prompt"], plan["samples_per_step"]) == (1024, 8, 8192)
    assert plan["minibatch_size"] == 128 and plan["optimizer_updates_per_step"] == 64
    assert plan["micro_batch_size"] == 2 and plan["data_parallel_ranks"] == 8 and plan["grad_accumulation"] == 8
    assert plan["algorithm"] == "gae" and {"critic", "reference"} <= set(plan["roles"])
    assert plan["kl"] == {"coef": 0.01, "estimator": "k1", "mode": "reward"}
    assert plan["strategy"] == "deepspeed ZeRO-3" and plan["rollout_backend"] == "vllm"
    assert plan["template"] == "qwen_boxed" and plan["reward"]["scheme"] == "simplerl"
    assert plan["records"] == 8886 and plan["steps_per_epoch"] == 8 and plan["total_steps"] == 8 * 20
    res = plan["resources"]  # SimpleRL's 32 GPUs: actor+ref 8, critic 8, 16 vLLM engines
    assert res["policy"]["ranks"] == 8 and res["reference"]["colocated_with_policy"] is True
    assert res["critic"]["ranks"] == 8 and res["critic"]["colocated_with_policy"] is False
    assert res["rollout"]["engines"] == 16 and res["total_gpus"] == 32
    cfg = rl_config("simplerl_zero_ppo.yaml")
    assert (cfg.model.pretrain, cfg.data.train) == ("Qwen/Qwen2.5-Math-7B", "math_l3to5_simplerl_approx")
    assert (cfg.train.actor_lr, cfg.train.critic_lr) == (5e-7, 9e-6)
    assert (cfg.train.lr_scheduler, cfg.train.warmup_ratio, cfg.train.min_lr_ratio) == ("cosine", 0.03, 0.1)
    assert (cfg.rollout.temperature, cfg.data.max_prompt_tokens, cfg.rollout.max_new_tokens) == (0.6, 1024, 3000)
    a = cfg.algorithm
    assert (a.clip_low, a.clip_high, a.value_clip, a.gamma, a.lam) == (0.2, 0.2, 0.2, 1.0, 0.95)
    assert cfg.train.episodes == 20 and cfg.model.dtype == "bfloat16" and cfg.train.zero_stage == 3


def test_simplerl_sft_then_rl_is_the_same_rl_from_the_sft_model(capsys, sft_data):
    zero = yaml.safe_load((RECIPES / "simplerl_zero_ppo.yaml").read_text())
    rl = yaml.safe_load((RECIPES / "simplerl_sft_rl.yaml").read_text())
    for tree in (zero, rl):  # the keys allowed to differ
        tree.pop("name")
        tree["logging"].pop("output_dir")
    sft_model = rl["model"].pop("pretrain")
    zero["model"].pop("pretrain")
    assert rl == zero  # every RL hyper-parameter is SimpleRL-Zero's
    sft_plan = dry_run("simplerl_sft.yaml", sft_data, capsys)
    assert sft_plan["output"] == sft_model  # stage 2 starts from stage 1's HF checkpoint
    assert sft_plan["records"] + sft_plan["held_out_for_eval"] == 128 and sft_plan["held_out_for_eval"] == 3
    assert sft_plan["strategy"] == "deepspeed ZeRO-3"
    sft = load_config(SFTConfig, RECIPES / "simplerl_sft.yaml")
    assert sft.model.pretrain == "Qwen/Qwen2.5-Math-7B" and sft.data.template == zero["data"]["template"]
    assert sft.data.max_len <= 4096  # Qwen2.5-Math-7B's context
    rl_plan = dry_run("simplerl_sft_rl.yaml", sft_data, capsys)
    assert rl_plan["model"] == sft_model and rl_plan["optimizer_updates_per_step"] == 64


def test_sft_recipe_without_its_data_names_the_missing_file(capsys):
    from trainer import sft_cli

    assert sft_cli.main(["--config", str(RECIPES / "simplerl_sft.yaml"), "--dry-run"]) == 2
    assert "simplerl_long_cot_sft.jsonl" in capsys.readouterr().err


def test_limo_grpo_plan(capsys, sft_data):
    plan = dry_run("limo_grpo.yaml", sft_data, capsys)
    assert (plan["prompts_per_step"], plan["samples_per_prompt"], plan["samples_per_step"]) == (64, 7, 448)
    assert plan["optimizer_updates_per_step"] == 1 and plan["data_parallel_ranks"] == 7
    assert plan["kl"] == {"coef": 0.005, "estimator": "k3", "mode": "loss"} and "critic" not in plan["roles"]
    assert "hub dataset 'GAIR/LIMO'" in plan["records"]  # named, not downloaded
    assert plan["resources"]["rollout"]["engines"] == 1 and plan["resources"]["total_gpus"] == 8
    cfg = rl_config("limo_grpo.yaml")
    t = cfg.train
    assert (t.actor_lr, t.lr_scheduler, t.warmup_ratio, t.weight_decay, t.max_grad_norm, t.episodes) == \
        (5e-6, "cosine", 0.1, 0.1, 1.0, 3)
    assert cfg.model.pretrain == "Qwen/Qwen2.5-Math-1.5B" and cfg.data.train == "GAIR/LIMO"


def test_torl_plan(capsys, sft_data):
    plan = dry_run("torl_qwen2.5_math_1.5b.yaml", sft_data, capsys)
    assert (plan["prompts_per_step"], plan["samples_per_prompt"], plan["optimizer_updates_per_step"]) == (128, 16, 1)
    assert plan["records"] == 8886 and plan["template"] == "qwen_tir" and plan["kl"]["coef"] == 0
    assert plan["resources"]["total_gpus"] == 8 and plan["resources"]["rollout"]["engines"] == 8
    tools = plan["tools"]
    assert (tools["format"], tools["max_tool_calls"], tools["tool"]) == ("torl", 1, "python")
    cfg = rl_config("torl_qwen2.5_math_1.5b.yaml")
    r = cfg.rollout
    assert (r.temperature, r.top_p, r.max_new_tokens, cfg.data.max_prompt_tokens) == (1.0, 1.0, 3072, 1024)
    assert (cfg.train.actor_lr, cfg.algorithm.entropy_coef, cfg.model.pretrain) == (1e-6, 0.0, "Qwen/Qwen2.5-Math-1.5B")
    from mathrl_core.rollout.registry import RolloutSpec

    spec = cfg.rollout_spec(sync_backend="auto", colocated=True)
    assert isinstance(spec, RolloutSpec) and spec.tools is cfg.rollout.tools  # every engine wraps its backend


def test_tool_demo_recipes_plan(capsys, sft_data):
    plan = dry_run("tool_demo_grpo.yaml", sft_data, capsys)
    assert plan["tools"]["format"] == "torl" and plan["tools"]["preload"] == []
    assert dry_run("tool_demo_grpo.yaml", sft_data, capsys, ["rollout.tools=null"])["tools"] is None


def test_gsm8k_lora_grpo_plan(capsys, sft_data):
    plan = dry_run("gsm8k_lora_grpo.yaml", sft_data, capsys)
    assert (plan["samples_per_prompt"], plan["samples_per_step"], plan["optimizer_updates_per_step"]) == (8, 16, 1)
    assert plan["records"] == 7473 and plan["placement"] == "local (one process)"
    assert plan["template"] == "gsm8k_reasoning" and plan["reward"]["scheme"] == "correctness"
    assert plan["kl"]["coef"] == 0 and plan["roles"] == ["policy", "rollout", "reward"]
    cfg = rl_config("gsm8k_lora_grpo.yaml")
    lo, t = cfg.model.lora, cfg.train
    assert (lo.rank, lo.load_in_4bit) == (64, True)
    assert (t.actor_lr, t.weight_decay, t.warmup_ratio, t.max_grad_norm) == (1e-5, 0.1, 0.1, 0.1)
    assert (cfg.data.max_prompt_tokens, cfg.rollout.max_new_tokens) == (256, 750)
    assert cfg.rollout.backend == "hf"  # 4-bit weights cannot be sent to vLLM (export_state_dict refuses them)


def test_rlinf_grpo_plan(capsys, sft_data):
    plan = dry_run("rlinf_grpo.yaml", sft_data, capsys)
    assert plan["samples_per_prompt"] == 16 and plan["kl"]["coef"] == 0 and "reference" not in plan["roles"]
    assert plan["loss_agg"] == "token_mean" and plan["reward"]["scheme"] == "rlinf"
    assert plan["template"] == "deepseek_distill" and plan["optimizer_updates_per_step"] == 4
    assert plan["resources"]["total_gpus"] == 64
    cfg = rl_config("rlinf_grpo.yaml")
    assert cfg.algorithm.ratio_early_stop == 5.0 and cfg.model.pretrain == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens == 28672  # RLinf's runner.seq_length


# ------------------------------------------------------------------------------------------------ shell wrappers
@pytest.mark.parametrize("script", SCRIPTS)
def test_shell_wrapper_syntax(script):
    r = subprocess.run(["bash", "-n", str(RECIPES / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _wrapper(script: str, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHON=PY, **(env or {}))
    return subprocess.run(["bash", str(RECIPES / script), *args], capture_output=True, text=True, env=e,
                          timeout=timeout, cwd=ROOT)


def test_wrapper_commands_for_a_multi_node_run(tmp_path):
    env = {"PRINT_ONLY": "1", "OUTPUT_ROOT": str(tmp_path), "REWARD_URL": "http://rs:8000", "GPUS_PER_NODE": "4"}
    head = _wrapper("simplerl_zero_ppo.sh", "head", env=env).stdout
    assert shlex.split(head.splitlines()[0]) == ["ray", "start", "--head", "--port", "6379", "--num-gpus", "4",
                                                 "--dashboard-host", "0.0.0.0"]
    worker = shlex.split(_wrapper("simplerl_zero_ppo.sh", "worker", "10.1.2.3", env=env).stdout)
    assert worker == ["ray", "start", "--address", "10.1.2.3:6379", "--num-gpus", "4"]
    assert _wrapper("simplerl_zero_ppo.sh", "worker", env=env).returncode != 0  # the head's address is required
    submit = shlex.split(_wrapper("simplerl_zero_ppo.sh", "submit", "train.seed=7", "--resume", env=env).stdout)
    assert submit[:5] == ["ray", "job", "submit", "--address", "http://127.0.0.1:8265"]
    driver = shlex.split(submit[submit.index("--") + 3])  # bash -c "cd ROOT && PY -m trainer.cli ..."
    assert driver[:2] == ["cd", str(ROOT)]
    cli = driver[driver.index("&&") + 1:]
    assert cli[:5] == [PY, "-m", "trainer.cli", "--config", "recipes/simplerl_zero_ppo.yaml"]
    assert cli[5] == "--resume" and cli[-1] == "train.seed=7"  # flags first, the user's overrides last
    assert f"logging.output_dir={tmp_path}/simplerl_zero_ppo" in cli and "reward.url=http://rs:8000" in cli


def test_sft_then_rl_wrapper_runs_both_stages(tmp_path, sft_data):
    env = {"PRINT_ONLY": "1", "OUTPUT_ROOT": str(tmp_path), "SFT_DATA": str(sft_data)}
    sft, rl = [shlex.split(line) for line in _wrapper("simplerl_sft_rl.sh", env=env).stdout.splitlines()]
    assert sft[:3] == [PY, "-m", "torch.distributed.run"] and "trainer.sft_cli" in sft
    assert f"data.train={sft_data}" in sft and f"logging.output_dir={tmp_path}/simplerl_sft" in sft
    assert rl[:5] == [PY, "-m", "trainer.cli", "--config", "recipes/simplerl_sft_rl.yaml"]
    assert f"model.pretrain={tmp_path}/simplerl_sft/model" in rl  # stage 2 starts from stage 1's model


def test_wrapper_dry_run_executes(sft_data):
    """For real: rl-sft's plan, then rl-train's through recipe_main, with the wrapper's and the user's overrides."""
    r = _wrapper("simplerl_sft_rl.sh", "dry-run", "rollout.n=4", env={"SFT_DATA": str(sft_data)})
    assert r.returncode == 0, r.stderr
    sft_plan, rl_plan = _two_json(r.stdout)
    assert sft_plan["records"] + sft_plan["held_out_for_eval"] == 128 and rl_plan["model"].endswith("runs/simplerl_sft/model")
    assert rl_plan["samples_per_step"] == 1024 * 4


def _two_json(text: str) -> tuple[dict, dict]:
    dec = json.JSONDecoder()
    first, end = dec.raw_decode(text.lstrip())
    second, _ = dec.raw_decode(text.lstrip()[end:].lstrip())
    return first, second


# ------------------------------------------------------------------------------ 4-bit loading (GSM8K LoRA)
def test_4bit_quantization_config():
    from mathrl_core.models.loading import quantization_config_4bit

    q = quantization_config_4bit()
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_compute_dtype == torch.bfloat16
    assert q.bnb_4bit_use_double_quant


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error")
@pytest.mark.parametrize("device", [None, "cpu", "cuda"])
def test_4bit_loading_on_cpu_is_a_clear_error(device, tmp_path):
    from mathrl_core.models.loading import LoraSpec, load_causal_lm

    with pytest.raises(ValueError, match="load_in_4bit needs a CUDA"):
        load_causal_lm(str(tmp_path), lora=LoraSpec(rank=8), load_in_4bit=True, device=device)


def test_4bit_needs_lora(tmp_path):
    from mathrl_core.models.loading import load_causal_lm

    with pytest.raises(ValueError, match="lora.rank > 0"):
        load_causal_lm(str(tmp_path), load_in_4bit=True)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="checks the error without bitsandbytes")
def test_4bit_without_bitsandbytes_is_a_clear_error(monkeypatch):
    """The branch after the CUDA check; CUDA cannot run here, so only its availability answer is replaced."""
    import importlib.util

    from mathrl_core.models.loading import resolve_4bit_device

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(ImportError, match="bitsandbytes"):
        resolve_4bit_device(None)


def test_export_refuses_quantized_weights():
    """vLLM weight sync exports HF tensors; bitsandbytes' packed 4-bit parameters are not, so it stops."""
    from mathrl_core.models.loading import export_state_dict

    class Params4bit(torch.nn.Parameter):  # the class name bitsandbytes gives its 4-bit weights
        pass

    layer = torch.nn.Linear(4, 4)
    layer.weight = Params4bit(torch.zeros(4, 4), requires_grad=False)
    with pytest.raises(ValueError, match="rollout.backend=hf"):
        export_state_dict(layer)
