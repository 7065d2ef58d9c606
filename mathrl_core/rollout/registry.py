"""Rollout backends by name: one registration per backend, one factory for every caller.

    ROLLOUT_BACKENDS["hf"]    HF ``generate`` (``mathrl_core.rollout.hf``); can share the trainer's policy module
    ROLLOUT_BACKENDS["vllm"]  a vLLM engine (``mathrl_core.rollout.vllm_engine``); weights synced after updates

``make_rollout(spec, model_path=..., model=..., tokenizer=...)`` builds one for the trainer (local placement,
each Ray engine actor) and for ``rl-eval``; ``spec.tools`` wraps it for multi-turn tool use. A new backend is one :func:`register_rollout_backend` call with a
builder ``(spec, ModelSource) -> RolloutBackend``; the trainer's config (``rollout.backend``) and ``rl-eval
--backend`` accept every registered name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from mathrl_core.models.loading import load_hf_model, load_tokenizer
from mathrl_core.registry import Registry
from mathrl_core.rollout.base import RolloutBackend
from mathrl_core.rollout.hf import HFRollout
from mathrl_core.rollout.vllm_engine import VLLMRollout  # imports vllm itself only when an engine is built
from mathrl_core.tools.config import ToolConfig
from mathrl_core.tools.rollout import ToolRollout


@dataclass
class RolloutSpec:
    """Engine settings of a rollout backend (each backend reads the fields it knows)."""

    backend: str = "hf"
    micro_batch_size: int = 64          # hf: sequences (prompts x n) per generate call
    hf_fast_decode: bool = True         # hf: mathrl_core.rollout.hf_decode pieces plugged into generate
    dtype: str = "auto"                 # vllm: engine dtype; hf (loading from a path): "auto" -> float32
    tensor_parallel_size: int = 1
    gpu_memory_utilization: Optional[float] = None  # vllm on GPU (never used on CPU: engine_args)
    kv_cache_memory_bytes: Optional[int] = None     # vllm (default on CPU: 1 GiB)
    enforce_eager: bool = False
    enable_sleep: bool = False
    sync_backend: str = "auto"          # vllm weight sync: auto | cpu_reload | nccl | ipc
    colocated: bool = True              # vllm: the trainer shares the engine's device (resolves "auto")
    max_model_len: Optional[int] = None
    seed: int = 0
    trust_remote_code: bool = False
    engine_kwargs: dict = field(default_factory=dict)  # further backend-specific arguments
    tools: Optional[ToolConfig] = None  # multi-turn with the Python tool: the backend wrapped in a ToolRollout


@dataclass
class ModelSource:
    """Where a backend gets its weights: a loaded ``model`` (+ ``tokenizer``) to share, or a path/hub id."""

    model_path: Optional[str] = None
    tokenizer_path: Optional[str] = None
    model: Any = None
    tokenizer: Any = None
    device: Optional[str] = None


@dataclass(frozen=True)
class BackendEntry:
    name: str
    build: Callable[[RolloutSpec, ModelSource], RolloutBackend]
    # can run in its own process / Ray actor from a model path (False: needs the trainer's module in-process)
    remote_capable: bool
    description: str = ""


ROLLOUT_BACKENDS: Registry[BackendEntry] = Registry("rollout backend")


def register_rollout_backend(name: str, build: Callable[[RolloutSpec, ModelSource], RolloutBackend], *,
                             remote_capable: bool, description: str = "", overwrite: bool = False) -> BackendEntry:
    """Add a backend; ``build(spec, source)`` returns a :class:`RolloutBackend`."""
    return ROLLOUT_BACKENDS.add(name, BackendEntry(name, build, remote_capable, description), overwrite)


def get_backend(name: str) -> BackendEntry:
    return ROLLOUT_BACKENDS.lookup(name)


def make_rollout(spec: RolloutSpec, source: ModelSource) -> RolloutBackend:
    """The rollout backend ``spec.backend`` for the weights in ``source``; with ``spec.tools``, wrapped so that
    the policy runs Python in the loop (``mathrl_core.tools.rollout.ToolRollout``: any backend works)."""
    backend = get_backend(spec.backend).build(spec, source)
    return ToolRollout(backend, spec.tools) if spec.tools is not None else backend


def _build_hf(spec: RolloutSpec, src: ModelSource) -> RolloutBackend:
    model, tokenizer, shares = src.model, src.tokenizer, src.model is not None
    if model is None:
        if not src.model_path:
            raise ValueError("the hf rollout backend needs a loaded model or a model path")
        dtype = "float32" if spec.dtype == "auto" else spec.dtype
        model = load_hf_model(src.model_path, dtype=dtype, device=src.device,
                              trust_remote_code=spec.trust_remote_code)
    if tokenizer is None:
        tokenizer = load_tokenizer(src.tokenizer_path or src.model_path, padding_side="left",
                                   trust_remote_code=spec.trust_remote_code)
    return HFRollout(model, tokenizer, micro_batch_size=spec.micro_batch_size, fast_decode=spec.hf_fast_decode,
                     shares_policy=shares)


def _build_vllm(spec: RolloutSpec, src: ModelSource) -> RolloutBackend:
    if not src.model_path:
        raise ValueError("the vllm rollout backend loads its weights from a model path or hub id")
    if os.path.isfile(os.path.join(src.model_path, "adapter_config.json")):
        raise ValueError(f"{src.model_path} is a LoRA adapter: use the hf backend (it merges the adapter into its "
                         "base model), or merge it and give the merged model")
    return VLLMRollout(src.model_path, tokenizer=src.tokenizer_path, dtype=spec.dtype,
                       tensor_parallel_size=spec.tensor_parallel_size,
                       gpu_memory_utilization=spec.gpu_memory_utilization,
                       kv_cache_memory_bytes=spec.kv_cache_memory_bytes, enforce_eager=spec.enforce_eager,
                       seed=spec.seed, max_model_len=spec.max_model_len, enable_sleep_mode=spec.enable_sleep,
                       sync_backend=spec.sync_backend, colocated=spec.colocated,
                       trust_remote_code=spec.trust_remote_code, engine_kwargs=spec.engine_kwargs or None)


register_rollout_backend("hf", _build_hf, remote_capable=False,
                         description="HF generate (shares the trainer's policy module in-process)")
register_rollout_backend("vllm", _build_vllm, remote_capable=True,
                         description="a vLLM engine (weights synced into it after every update)")
