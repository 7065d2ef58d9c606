"""The rollout factory and the one vLLM engine-argument builder: CPU engines never ask for a fraction of host
memory (checked on the arguments and on a real engine under a machine's smaller memory view), and a new rollout
backend is one registration that the trainer's config and ``rl-eval`` accept."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mathrl_core.rollout.engine_args import CPU_DEFAULT_KV_CACHE_BYTES, vllm_engine_kwargs
from mathrl_core.rollout.hf import HFRollout
from mathrl_core.rollout.registry import ROLLOUT_BACKENDS, ModelSource, RolloutSpec, make_rollout, \
    register_rollout_backend
from mathrl_core.sampling import SamplingConfig

REPO = Path(__file__).resolve().parents[1]


def test_cpu_engine_gets_kv_bytes_and_no_memory_fraction():
    kw = vllm_engine_kwargs("m", on_cpu=True, gpu_memory_utilization=0.9, enable_sleep_mode=False)
    assert kw["kv_cache_memory_bytes"] == CPU_DEFAULT_KV_CACHE_BYTES and "gpu_memory_utilization" not in kw
    assert kw["enable_chunked_prefill"] is False and "enable_sleep_mode" not in kw
    assert vllm_engine_kwargs("m", on_cpu=True, kv_cache_memory_bytes=123)["kv_cache_memory_bytes"] == 123
    with pytest.raises(ValueError, match="kv_cache_memory_bytes"):
        vllm_engine_kwargs("m", on_cpu=True, extra={"gpu_memory_utilization": 0.5})


def test_gpu_engine_uses_the_memory_fraction():
    kw = vllm_engine_kwargs("m", on_cpu=False, tokenizer="t", enable_sleep_mode=True)
    assert kw["gpu_memory_utilization"] == 0.8 and "kv_cache_memory_bytes" not in kw
    assert kw["tokenizer"] == "t" and kw["enable_sleep_mode"] is True
    kw = vllm_engine_kwargs("m", on_cpu=False, gpu_memory_utilization=0.5, kv_cache_memory_bytes=7,
                            extra={"swap_space": 0})
    assert (kw["gpu_memory_utilization"], kw["kv_cache_memory_bytes"], kw["swap_space"]) == (0.5, 7, 0)


@pytest.mark.slow
def test_engine_starts_when_vllm_sees_a_small_memory_node(tmp_path):
    """The fresh-machine failure, reproduced: under a 4 GiB node view a memory fraction is refused, while our
    builder's engine (given the same fraction, which it ignores on CPU) starts and generates."""
    from trainer.models.tiny import save_tiny_checkpoint

    model = save_tiny_checkpoint(tmp_path / "tiny", seed=0, vocab_size=600, hidden_size=64, num_layers=1,
                                 num_heads=2, num_kv_heads=1)
    script = str(REPO / "tests" / "vllm_memory_view_script.py")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(mode):
        return subprocess.run([sys.executable, script, str(model), mode], capture_output=True, text=True,
                              timeout=300, env=env, cwd=REPO)

    refused = run("fraction")
    assert refused.returncode != 0 and "Available memory on node" in refused.stderr + refused.stdout
    ok = run("builder")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "ENGINE STARTED" in ok.stdout
    assert f"KV_CACHE_BYTES={CPU_DEFAULT_KV_CACHE_BYTES}" in ok.stdout


@pytest.mark.usefixtures("single_thread")
def test_a_registered_backend_is_one_registration(tiny_model, tiny_tokenizer):
    """A new backend: one register_rollout_backend call; make_rollout, the trainer's config and rl-eval's
    --backend choices accept it (here: stock HF generate without the fast-decode pieces)."""
    from eval.cli import build_parser
    from trainer.config import RLConfig, RolloutConfig

    def build(spec: RolloutSpec, src: ModelSource):
        return HFRollout(src.model, src.tokenizer, micro_batch_size=spec.micro_batch_size, fast_decode=False,
                         shares_policy=src.model is not None)

    register_rollout_backend("hf_stock_test", build, remote_capable=False)
    try:
        assert RLConfig(rollout=RolloutConfig(backend="hf_stock_test")).rollout.backend == "hf_stock_test"
        ro = make_rollout(RolloutSpec(backend="hf_stock_test"), ModelSource(model=tiny_model, tokenizer=tiny_tokenizer))
        out = ro.generate(["What is 2+3?"], SamplingConfig(n=2, temperature=0.0, max_new_tokens=6))
        assert len(out) == 2 and ro.shares_policy and ro.prompts_per_call(2) == 32
        assert "hf_stock_test" in build_parser()._subparsers._group_actions[0].choices["run"]._option_string_actions[
            "--backend"].choices
    finally:
        ROLLOUT_BACKENDS.pop("hf_stock_test")
    with pytest.raises(ValueError, match="rollout.backend"):
        RLConfig(rollout=RolloutConfig(backend="hf_stock_test"))
