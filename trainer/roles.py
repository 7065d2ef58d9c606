"""The role factory: every worker of a run is built here, whatever its placement.

    build_worker(cfg, role, placement, model_path=..., total_updates=..., policy=..., tokenizer=...)
        role       policy | reference | critic | rollout
        placement  Placement.local(...)   this process (CPU or one GPU)
                   Placement.ray_rank(...) rank r of a Ray actor group of w ranks (DeepSpeed over its process
                   group; a rollout engine in its own actor)
                   Placement.own_process(...) a rollout in a local process of its own (asynchronous RL)

The local run (``trainer.build``), every Ray rank and engine (``trainer.distributed.actors``) and SFT
(``trainer.sft``, through :func:`build_trainable` and :func:`causal_lm_loader`) construct models, trainables and
rollout engines only through these functions, so the rules below hold everywhere:

- training dtype: DeepSpeed keeps fp32 master weights and casts the module itself, so it loads fp32
  (:func:`training_dtype`); the torch strategy loads ``model.dtype``.
- the reference: ``cfg.reference_is_policy_base`` (LoRA + KL) reads the policy's own frozen base with the
  adapters disabled, in the local run and on Ray alike; otherwise a frozen copy in ``model.dtype``.
- the rollout: an in-process backend (HF) shares the policy module; a remote-capable one (vLLM) loads the model
  path and receives weights through ``cfg.sync_backend(...)``'s route. In a process of its own
  (``Placement.own_process``) every backend loads the model path and receives weights by ``update_weights``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from mathrl_core.models.gguf import resolve_model_path
from mathrl_core.models.loading import LoraSpec, load_causal_lm, load_reference
from mathrl_core.rollout.registry import ModelSource, get_backend, make_rollout
from mathrl_core.rollout.weight_sync import resolve_sync_backend
from trainer.config import RLConfig
from trainer.models.critic import Critic
from trainer.schedules import lr_lambda
from trainer.strategy import TorchTrainable, dist
from trainer.workers.critic import CriticWorker
from trainer.workers.policy import PolicyWorker, ReferenceWorker

ROLES = ("policy", "reference", "critic", "rollout")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_path(pretrain: str, tiny, output_dir: str | Path) -> str:
    """``pretrain`` (hub id or path; a GGUF model resolved to its converted HF directory, here on the driver so
    that Ray ranks and engines never convert), or the tiny local model of ``tiny`` (a ``TinyModelConfig``) built
    under ``<output_dir>/tiny_model`` when ``pretrain`` is empty."""
    if pretrain:
        return resolve_model_path(pretrain)
    if tiny is None:
        raise ValueError("model.pretrain is empty: give a hub id or a local path (or model.tiny for a local toy)")
    return str(tiny.ensure(Path(output_dir) / "tiny_model"))


def training_dtype(strategy: str, dtype: str) -> str:
    """DeepSpeed keeps fp32 master weights and casts the module itself: load in fp32 there."""
    return "float32" if strategy == "deepspeed" else dtype


@dataclass(frozen=True)
class Placement:
    """Where a worker lives: this process, or rank ``rank`` of a ``world_size``-rank Ray group."""

    kind: str = "local"                 # local | ray | process (a rollout in a local process of its own)
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def local(cls, device: str = "auto") -> "Placement":
        return cls("local", 0, 1, resolve_device(device))

    @classmethod
    def ray_rank(cls, rank: int, world_size: int, device: str = "auto") -> "Placement":
        dev = resolve_device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU(s)
        return cls("ray", rank, world_size, dev)

    @classmethod
    def own_process(cls, device: str = "auto") -> "Placement":
        return cls("process", 0, 1, resolve_device(device))

    @property
    def all_reduce_sum(self) -> Callable[[float], float]:
        return (lambda x: x) if self.world_size == 1 else dist.all_reduce_sum


@dataclass
class OptimSettings:
    """How a model trains (RL's ``train.*`` and SFT's ``train.*`` both map to this)."""

    lr: float
    lr_lambda: Callable[[int], float]
    strategy: str = "torch"
    zero_stage: int = 2
    dtype: str = "float32"
    offload_optimizer: bool = False
    offload_params: bool = False
    weight_decay: float = 0.0
    betas: Any = (0.9, 0.95)
    max_grad_norm: float = 1.0
    micro_batch_size: int = 8
    grad_accumulation: int = 1


def build_trainable(loader: Callable[[], torch.nn.Module], opt: OptimSettings, world_size: int = 1):
    """Build a model with ``loader()`` and wrap it for training: ``torch`` (AdamW in this process) or
    ``deepspeed`` (a ZeRO engine over the process group from the environment; under ZeRO-3 the model is created
    partitioned)."""
    if opt.strategy == "torch":
        if world_size != 1:
            raise ValueError("train.strategy=torch runs one process; use train.strategy=deepspeed for several ranks")
        return TorchTrainable(loader(), lr=opt.lr, weight_decay=opt.weight_decay, betas=opt.betas,
                              max_grad_norm=opt.max_grad_norm, lr_lambda=opt.lr_lambda)
    # deepspeed is a heavy optional dependency: imported only for a deepspeed run
    from transformers import AutoModelForCausalLM  # noqa: F401  (model classes imported before zero.Init)

    from trainer.strategy.deepspeed_strategy import DeepSpeedTrainable, ds_config, load_model

    config = ds_config(zero_stage=opt.zero_stage, dtype=opt.dtype, max_grad_norm=opt.max_grad_norm,
                       offload_optimizer=opt.offload_optimizer, offload_params=opt.offload_params,
                       micro_batch_size=opt.micro_batch_size, grad_accum_steps=opt.grad_accumulation,
                       world_size=world_size)
    return DeepSpeedTrainable(load_model(loader, config), lr=opt.lr, weight_decay=opt.weight_decay,
                              betas=opt.betas, max_grad_norm=opt.max_grad_norm, lr_lambda=opt.lr_lambda,
                              config=config)


def causal_lm_loader(path: str, m, strategy: str, device=None, lora: Optional[LoraSpec] = None,
                     load_in_4bit: bool = False) -> Callable[[], torch.nn.Module]:
    """The loader of a trainable causal LM from model settings ``m`` (dtype, gradient_checkpointing,
    attn_implementation, trust_remote_code) in the strategy's training dtype."""
    return lambda: load_causal_lm(path, dtype=training_dtype(strategy, m.dtype),
                                  gradient_checkpointing=m.gradient_checkpointing, lora=lora,
                                  attn_implementation=m.attn_implementation, trust_remote_code=m.trust_remote_code,
                                  device=device, load_in_4bit=load_in_4bit)


def lora_spec(cfg: RLConfig) -> Optional[LoraSpec]:
    lo = cfg.model.lora
    if lo.rank <= 0:
        return None
    return LoraSpec(rank=lo.rank, alpha=lo.alpha, dropout=lo.dropout, target_modules=list(lo.target_modules))


def rl_optim(cfg: RLConfig, lr: float, total_updates: int, world_size: int) -> OptimSettings:
    t = cfg.train
    return OptimSettings(lr=lr, lr_lambda=lr_lambda(t.lr_scheduler, total_updates, t.warmup_ratio, t.min_lr_ratio),
                         strategy=t.strategy, zero_stage=t.zero_stage, dtype=cfg.model.dtype,
                         offload_optimizer=t.offload_optimizer, offload_params=t.offload_params,
                         weight_decay=t.weight_decay, betas=t.adam_betas, max_grad_norm=t.max_grad_norm,
                         micro_batch_size=t.micro_batch_size, grad_accumulation=cfg.grad_accumulation(world_size))


def build_worker(cfg: RLConfig, role: str, placement: Placement, *, model_path: str, total_updates: int = 0,
                 policy: Optional[PolicyWorker] = None, tokenizer=None):
    """The worker of ``role`` for ``placement`` (see the module docstring).

    ``policy``: the policy worker of the same placement, for a reference that is the policy's own base (LoRA) and
    for a rollout backend that shares the policy module. ``tokenizer``: the run's tokenizer (rollout).
    """
    m, dev, world = cfg.model, placement.device, placement.world_size
    # DeepSpeed places a Ray rank's module itself (partitioned under ZeRO-3); elsewhere the loader does
    on_device = dev if placement.kind == "local" or cfg.train.strategy == "torch" else None
    if role == "policy":
        loader = causal_lm_loader(model_path, m, cfg.train.strategy, on_device, lora_spec(cfg), m.lora.load_in_4bit)
        trainable = build_trainable(loader, rl_optim(cfg, cfg.train.actor_lr, total_updates, world), world)
        return PolicyWorker(cfg, trainable, world_size=world, all_reduce_sum=placement.all_reduce_sum)
    if role == "critic":
        def loader():
            critic = Critic.from_model(m.critic_pretrain or model_path, dtype=training_dtype(cfg.train.strategy, m.dtype),
                                       gradient_checkpointing=m.gradient_checkpointing, lora=lora_spec(cfg),
                                       attn_implementation=m.attn_implementation,
                                       trust_remote_code=m.trust_remote_code, seed=cfg.train.seed)
            return critic.to(on_device) if on_device is not None else critic

        trainable = build_trainable(loader, rl_optim(cfg, cfg.train.critic_lr, total_updates, world), world)
        return CriticWorker(cfg, trainable, world_size=world, all_reduce_sum=placement.all_reduce_sum)
    if role == "reference":
        if cfg.reference_is_policy_base:
            if policy is None:
                raise ValueError("a LoRA run's reference is the policy's base: build the policy first")
            return ReferenceWorker(cfg, policy.model, adapters_off=True)
        return ReferenceWorker(cfg, load_reference(model_path, dtype=m.dtype, device=dev,
                                                   trust_remote_code=m.trust_remote_code))
    if role == "rollout":
        if placement.kind == "process":  # its own local process: weights arrive by update_weights (CPU tensors)
            sync = resolve_sync_backend(cfg.rollout.sync_backend, on_cpu=dev.type != "cuda", colocated=True,
                                        same_process=False)  # auto: cpu_reload (the tensors come over a pipe)
            spec = cfg.rollout_spec(sync_backend=sync, colocated=True)
            return make_rollout(spec, ModelSource(model_path=model_path, tokenizer_path=m.tokenizer, device=str(dev)))
        if get_backend(cfg.rollout.backend).remote_capable:
            same_process = placement.kind == "local"
            on_cpu = dev.type != "cuda" if same_process else cfg.ray.actor_num_gpus == 0
            spec = cfg.rollout_spec(sync_backend=cfg.sync_backend(on_cpu=on_cpu, same_process=same_process),
                                    colocated=same_process or cfg.ray.colocate_all)
            spec.seed += placement.rank  # each engine of a group samples its own stream
            return make_rollout(spec, ModelSource(model_path=model_path, tokenizer_path=m.tokenizer))
        if policy is None or tokenizer is None:
            raise ValueError(f"rollout.backend={cfg.rollout.backend} generates with the policy module: "
                             "build the policy first and give the tokenizer")
        spec = cfg.rollout_spec(sync_backend="auto", colocated=True)
        return make_rollout(spec, ModelSource(model=policy.model, tokenizer=tokenizer))
    raise ValueError(f"unknown role {role!r}; one of {ROLES}")
