"""Build a run from its config: model files, tokenizer, data, workers, rollout, reward, tracker, eval hook.

``build_run(cfg)`` places every worker in this process (CPU or one GPU). The Ray placement
(``trainer.distributed``) builds actor groups with the same methods and hands them to the same ``RLLoop``.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from trainer import checkpoint
from trainer.config import RLConfig
from trainer.config_tree import public_dict
from trainer.data.datasets import PromptDataset, PromptRecord, load_records
from trainer.data.templates import build_prompt, encode_prompt
from trainer.models.loading import LoraSpec, load_causal_lm, load_reference, load_tokenizer
from trainer.schedules import lr_lambda
from trainer.strategy import TorchTrainable

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_model_path(cfg: RLConfig) -> str:
    """``model.pretrain``, or a tiny model + tokenizer built locally (no hub) when ``model.tiny`` is set."""
    if cfg.model.pretrain:
        return cfg.model.pretrain
    if not cfg.model.tiny:
        raise ValueError("model.pretrain is empty: give a hub id or a local path (or model.tiny for a local toy)")
    from trainer.models.tiny import save_tiny_checkpoint

    opts = dict(cfg.model.tiny)
    out = Path(opts.pop("out_dir", Path(cfg.logging.output_dir) / "tiny_model"))
    if not (out / "config.json").is_file():
        logger.info("building a tiny local model in %s", out)
        save_tiny_checkpoint(out, **opts)
    return str(out)


def lora_spec(cfg: RLConfig) -> Optional[LoraSpec]:
    lo = cfg.model.lora
    if lo.rank <= 0:
        return None
    return LoraSpec(rank=lo.rank, alpha=lo.alpha, dropout=lo.dropout, target_modules=list(lo.target_modules))


def load_train_records(cfg: RLConfig) -> list[PromptRecord]:
    d = cfg.data
    if d.train == "synthetic":
        from trainer.data.synthetic import SyntheticConfig, synthetic_records

        opts = dict(d.synthetic or {})
        n = int(opts.pop("n", 2000))
        seed = int(opts.pop("seed", cfg.train.seed))
        syn = SyntheticConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()})
        rows = synthetic_records(n, "train", seed=seed, config=syn)
        records = [PromptRecord(r["question"], r["answer"], i, {"solution": r["solution"]}) for i, r in enumerate(rows)]
    elif d.train:
        records = load_records(d.train, split=d.split, question_key=d.question_key, answer_key=d.answer_key)
    else:
        raise ValueError("data.train is empty: give a file, a hub id, or 'synthetic'")
    return records[:d.limit] if d.limit else records


def filter_long_prompts(records: list[PromptRecord], tokenizer, cfg: RLConfig) -> list[PromptRecord]:
    """Drop (never truncate) prompts longer than ``data.max_prompt_tokens``."""
    keep = [r for r in records
            if len(encode_prompt(tokenizer, build_prompt(tokenizer, r.question, cfg.data.template)))
            <= cfg.data.max_prompt_tokens]
    if len(keep) < len(records):
        logger.warning("dropped %d of %d prompts longer than data.max_prompt_tokens=%d",
                       len(records) - len(keep), len(records), cfg.data.max_prompt_tokens)
    if not keep:
        raise ValueError(f"no prompt fits data.max_prompt_tokens={cfg.data.max_prompt_tokens}")
    return keep


def plan(cfg: RLConfig, num_records: int) -> dict:
    """Batch arithmetic of a run (also printed by ``--dry-run``)."""
    r, t = cfg.rollout, cfg.train
    steps_per_epoch = max(1, num_records // r.prompts_per_step)
    total_steps = t.total_steps or t.episodes * steps_per_epoch
    updates_per_step = t.ppo_epochs * (cfg.samples_per_step // t.minibatch_size)
    ranks = cfg.ray.actor_ranks if cfg.ray.enabled else 1
    return {"records": num_records, "prompts_per_step": r.prompts_per_step, "samples_per_prompt": r.n,
            "samples_per_step": cfg.samples_per_step, "minibatch_size": t.minibatch_size,
            "micro_batch_size": t.micro_batch_size,
            "grad_accumulation": t.minibatch_size // (t.micro_batch_size * ranks), "ppo_epochs": t.ppo_epochs,
            "data_parallel_ranks": ranks,
            "optimizer_updates_per_step": updates_per_step, "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps, "total_optimizer_updates": total_steps * updates_per_step,
            "roles": ["policy", "rollout", "reward"] + (["reference"] if cfg.algorithm.kl_coef > 0 else [])
                     + (["critic"] if cfg.uses_critic else [])}


def make_trainable(cfg: RLConfig, loader, lr: float, total_updates: int, world_size: int = 1):
    """Build a model with ``loader()`` and wrap it for training with ``train.strategy``.

    ``torch``: plain AdamW in this process. ``deepspeed``: a ZeRO engine (stage ``train.zero_stage``) over the
    process group from the environment; under ZeRO-3 the model is created partitioned (``load_model``).
    """
    t = cfg.train
    schedule = lr_lambda(t.lr_scheduler, total_updates, t.warmup_ratio, t.min_lr_ratio)
    if t.strategy == "torch":
        if world_size != 1:
            raise ValueError("train.strategy=torch runs one process; use train.strategy=deepspeed for several ranks")
        return TorchTrainable(loader(), lr=lr, weight_decay=t.weight_decay, betas=t.adam_betas,
                              max_grad_norm=t.max_grad_norm, lr_lambda=schedule)
    from trainer.strategy.deepspeed_strategy import DeepSpeedTrainable, ds_config, load_model

    micro = t.micro_batch_size
    accum = max(1, t.minibatch_size // (micro * world_size))
    config = ds_config(zero_stage=t.zero_stage, dtype=cfg.model.dtype, max_grad_norm=t.max_grad_norm,
                       offload_optimizer=t.offload_optimizer, offload_params=t.offload_params,
                       micro_batch_size=micro, grad_accum_steps=accum, world_size=world_size)
    module = load_model(loader, config)
    return DeepSpeedTrainable(module, lr=lr, weight_decay=t.weight_decay, betas=t.adam_betas,
                              max_grad_norm=t.max_grad_norm, lr_lambda=schedule, config=config)


def policy_loader(cfg: RLConfig, model_path: str, device=None):
    m = cfg.model
    return load_causal_lm(model_path, dtype=train_dtype(cfg), gradient_checkpointing=m.gradient_checkpointing,
                          lora=lora_spec(cfg), attn_implementation=m.attn_implementation,
                          trust_remote_code=m.trust_remote_code, device=device, load_in_4bit=m.lora.load_in_4bit)


def critic_loader(cfg: RLConfig, model_path: str, device=None):
    from trainer.models.critic import Critic

    m = cfg.model
    critic = Critic.from_model(m.critic_pretrain or model_path, dtype=train_dtype(cfg),
                               gradient_checkpointing=m.gradient_checkpointing, lora=lora_spec(cfg),
                               attn_implementation=m.attn_implementation, trust_remote_code=m.trust_remote_code,
                               seed=cfg.train.seed)
    return critic.to(device) if device is not None else critic


def train_dtype(cfg: RLConfig) -> str:
    """DeepSpeed keeps fp32 master weights and casts the module itself: load in fp32 there."""
    return "float32" if cfg.train.strategy == "deepspeed" else cfg.model.dtype


def build_eval_fn(cfg: RLConfig, tokenizer, rollout, output_dir: Path, grader_url: Optional[str] = None):
    """The eval hook: greedy (or sampled) generation with the current policy through the rollout backend,
    graded by the eval harness through the same reward service as the training reward (``grader_url``)."""
    e = cfg.eval
    if not e.every_steps or not (e.benchmarks or e.data):
        return None
    from eval.harness import evaluate
    from trainer.rollout.base import SamplingConfig

    def generate_fn(prompts, n):
        sampling = SamplingConfig(n=n, temperature=e.temperature, top_p=1.0,
                                  max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                                  stop=list(cfg.rollout.stop), seed=cfg.train.seed)
        out = rollout.generate(prompts, sampling)
        texts = [{"text": t, "num_tokens": len(ids)} for t, ids in zip(out.texts, out.response_token_ids)]
        return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]

    def eval_fn(step: int) -> dict:
        return evaluate(generate_fn, e.data or e.benchmarks, n=e.n, limit=e.limit, data_dir=e.data_dir,
                        tokenizer=tokenizer, template=cfg.data.template, step=step, grader_url=grader_url,
                        out_dir=output_dir / "eval" / f"step_{step:06d}")

    return eval_fn


def build_run(cfg: RLConfig, resume: bool = False):
    """Everything for one local run; returns the ``RLLoop`` (restored from the latest checkpoint if asked)."""
    from trainer.reward import RewardScorer
    from trainer.rl_loop import RLLoop
    from trainer.rollout.hf import HFRollout
    from trainer.tracking import Tracker
    from trainer.workers.critic import CriticWorker
    from trainer.workers.policy import PolicyWorker, ReferenceWorker

    seed_everything(cfg.train.seed)
    out_dir = Path(cfg.logging.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.train.device)
    model_path = resolve_model_path(cfg)
    tokenizer = load_tokenizer(cfg.model.tokenizer or model_path, trust_remote_code=cfg.model.trust_remote_code)
    records = filter_long_prompts(load_train_records(cfg), tokenizer, cfg)
    data = PromptDataset(records, batch_size=cfg.rollout.prompts_per_step, seed=cfg.train.seed)
    p = plan(cfg, len(records))
    m = cfg.model
    policy = PolicyWorker(cfg, make_trainable(cfg, lambda: policy_loader(cfg, model_path, device),
                                              cfg.train.actor_lr, p["total_optimizer_updates"]))
    policy_model = policy.model
    ref = None
    if cfg.algorithm.kl_coef > 0 and lora_spec(cfg) is not None:
        # LoRA: the frozen base under the adapters *is* the reference (no second copy), as TRL/OpenRLHF do
        ref = ReferenceWorker(cfg, policy_model, adapters_off=True)
    elif cfg.algorithm.kl_coef > 0:
        ref = ReferenceWorker(cfg, load_reference(model_path, dtype=m.dtype, device=device,
                                                  trust_remote_code=m.trust_remote_code))
    critic = None
    if cfg.uses_critic:
        critic = CriticWorker(cfg, make_trainable(cfg, lambda: critic_loader(cfg, model_path, device),
                                                  cfg.train.critic_lr, p["total_optimizer_updates"]))
    if cfg.rollout.backend == "hf":
        rollout = HFRollout(policy_model, tokenizer, micro_batch_size=cfg.rollout.micro_batch_size,
                             fast_decode=cfg.rollout.hf_fast_decode)
        shares = True
    else:
        from trainer.rollout.vllm_engine import VLLMRollout

        r = cfg.rollout
        rollout = VLLMRollout(model_path, tensor_parallel_size=r.tensor_parallel_size,
                              gpu_memory_utilization=r.gpu_memory_utilization, enforce_eager=r.enforce_eager,
                              dtype=m.dtype, seed=cfg.train.seed, enable_sleep_mode=r.enable_sleep,
                              sync_backend=r.sync_backend, colocated=True,
                              kv_cache_memory_bytes=r.kv_cache_memory_bytes,
                              max_model_len=cfg.data.max_prompt_tokens + r.max_new_tokens,
                              trust_remote_code=m.trust_remote_code)
        shares = False
    reward = RewardScorer(cfg.reward)
    start_step = 0
    ckpt = checkpoint.latest(out_dir) if resume else None
    if resume and ckpt is None:
        logger.warning("--resume: no checkpoint under %s, starting from scratch", out_dir)
    if ckpt is not None:
        start_step = int(checkpoint.load_state(ckpt)["step"])
    tracker = Tracker(out_dir, p["total_steps"], tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                      wandb_project=cfg.logging.wandb_project, run_name=cfg.name, config=public_dict(cfg),
                      progress_bar=cfg.logging.progress_bar, resume_step=start_step)
    loop = RLLoop(cfg, tokenizer=tokenizer, data=data, rollout=rollout, reward=reward, policy=policy, ref=ref,
                  critic=critic, tracker=tracker, eval_fn=build_eval_fn(cfg, tokenizer, rollout, out_dir, reward.url),
                  rollout_shares_policy=shares, total_steps=p["total_steps"])
    if ckpt is not None:
        loop.restore(ckpt)
        logger.info("resumed from %s at step %d", ckpt, loop.step_num)
    return loop
