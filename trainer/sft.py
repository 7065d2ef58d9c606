"""Supervised fine-tuning (the SFT of SFT-then-RL): loss on response tokens only, then an HF checkpoint that
``rl-train model.pretrain=<output_dir>/model`` starts from.

One optimizer step, as data::

    batch_size examples (shuffled, epoch by epoch) -> micro-batches (right-padded, or packed rows)
    -> per micro-batch: sum of response-token NLL / (response tokens of the whole step) -> backward
    -> at the step's last micro-batch: clip grad norm, AdamW step, LR schedule step
    -> metrics (loss, grad norm, lr, tokens/s) -> eval loss every N steps -> checkpoint every N steps

The loss is the token mean over the whole optimizer step (``sum_tokens NLL / N_tokens``), so gradient
accumulation, the micro-batch size, packing and data-parallel ranks all give the same update.

Stopping: after ``train.max_steps`` (default: ``train.epochs`` passes over the data), after
``train.max_time_s`` seconds of training, or on SIGTERM/SIGINT -- the step in flight finishes, then the final
model is written. The CPU quickstart uses the last two for its same-wall-time SFT control.

Strategies: ``torch`` (one process) or ``deepspeed`` (ZeRO-0..3; launch one process per rank with torchrun or
any launcher that sets RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT; each rank takes its share of every step).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

import torch

from mathrl_core.models.loading import load_tokenizer, load_weights, unwrap_model
from mathrl_core.records import PromptRecord
from trainer import checkpoint
from trainer.config_tree import ConfigError, public_dict
from trainer.data.datasets import PromptDataset
from trainer.data.synthetic import DemoNoise, SyntheticData, generate_problems, sft_records
from trainer.models.tiny import TinyModelConfig
from trainer.roles import (OptimSettings, build_trainable, causal_lm_loader, model_path, resolve_device,
                           seed_everything)
from trainer.schedules import lr_lambda
from trainer.strategy import dist
from trainer.sft_data import SFTExample, load_sft_records, micro_batches, token_nll_sum, tokenize_records

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ config
@dataclass
class SFTModelConfig:
    pretrain: str = ""                 # hub id or local path
    tokenizer: Optional[str] = None    # defaults to `pretrain`
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    gradient_checkpointing: bool = False
    attn_implementation: Optional[str] = None
    trust_remote_code: bool = False
    # Build a tiny model + tokenizer locally (no hub) when `pretrain` is empty (trainer.models.tiny)
    tiny: Optional[TinyModelConfig] = None


@dataclass
class SFTDataConfig:
    train: str = ""                    # file (.jsonl/.json/.parquet), directory, data-dir name, hub id, "synthetic"
    split: str = "train"
    eval: Optional[str] = None         # held-out file for the eval loss ("synthetic": the synthetic test split)
    eval_split: str = "test"
    eval_fraction: float = 0.0         # without data.eval: hold out this share of the train records
    eval_limit: Optional[int] = 256
    question_key: Optional[str] = None
    response_key: Optional[str] = None
    template: str = "qwen_boxed"
    max_len: int = 2048                # longer examples are dropped (counted), never truncated
    limit: Optional[int] = None
    # train == "synthetic": n, seed, noise {slip, wrong_box, no_box, skip_last}, and SyntheticConfig knobs
    synthetic: Optional[SyntheticData] = None


@dataclass
class SFTTrainConfig:
    strategy: Literal["torch", "deepspeed"] = "torch"
    zero_stage: int = 2
    offload_optimizer: bool = False
    lr: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    max_grad_norm: float = 1.0
    lr_scheduler: Literal["cosine", "constant"] = "cosine"
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.1
    batch_size: int = 32               # examples per optimizer step (all ranks together)
    micro_batch_size: int = 8          # examples per forward (rows per forward when packing), per rank
    packing: bool = False
    pack_length: Optional[int] = None  # tokens per packed row (default: data.max_len)
    epochs: int = 1
    max_steps: Optional[int] = None    # default: epochs x steps per epoch
    schedule_steps: Optional[int] = None  # steps the LR schedule spans (default: max_steps)
    max_time_s: Optional[float] = None # stop after this many seconds of training (then save)
    seed: int = 42
    device: str = "auto"


@dataclass
class SFTEvalConfig:
    every_steps: int = 0               # eval loss every N steps (0: only at the end, if there is eval data)
    micro_batch_size: int = 16


@dataclass
class SFTLoggingConfig:
    output_dir: str = "runs/sft"
    save_steps: int = 0                # training checkpoints every N steps (0: none; the final model is saved)
    keep_checkpoints: int = 2
    log_every_steps: int = 10
    progress_bar: bool = True


@dataclass
class SFTConfig:
    name: str = "sft"
    model: SFTModelConfig = field(default_factory=SFTModelConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    train: SFTTrainConfig = field(default_factory=SFTTrainConfig)
    eval: SFTEvalConfig = field(default_factory=SFTEvalConfig)
    logging: SFTLoggingConfig = field(default_factory=SFTLoggingConfig)

    def __post_init__(self):
        validate(self)


def validate(cfg: SFTConfig) -> None:
    t, d = cfg.train, cfg.data
    for key, value in [("train.lr", t.lr), ("train.batch_size", t.batch_size),
                       ("train.micro_batch_size", t.micro_batch_size), ("train.epochs", t.epochs),
                       ("train.max_steps", t.max_steps), ("train.schedule_steps", t.schedule_steps),
                       ("train.max_time_s", t.max_time_s), ("data.max_len", d.max_len),
                       ("train.pack_length", t.pack_length), ("eval.micro_batch_size", cfg.eval.micro_batch_size)]:
        if value is not None and value <= 0:
            raise ConfigError(f"{key}: must be > 0, got {value}")
    for key, value in [("train.weight_decay", t.weight_decay), ("train.max_grad_norm", t.max_grad_norm),
                       ("eval.every_steps", cfg.eval.every_steps), ("logging.save_steps", cfg.logging.save_steps)]:
        if value < 0:
            raise ConfigError(f"{key}: must be >= 0, got {value}")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"train.warmup_ratio: must be in [0, 1), got {t.warmup_ratio}")
    if not 0 <= t.min_lr_ratio <= 1:
        raise ConfigError(f"train.min_lr_ratio: must be in [0, 1], got {t.min_lr_ratio}")
    if not 0 <= d.eval_fraction < 1:
        raise ConfigError(f"data.eval_fraction: must be in [0, 1), got {d.eval_fraction}")
    if len(t.adam_betas) != 2:
        raise ConfigError(f"train.adam_betas: expected two numbers, got {t.adam_betas}")
    if t.zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"train.zero_stage: must be 0-3, got {t.zero_stage}")


# ------------------------------------------------------------------------------------------------ data
def synthetic_sft_records(syn: Optional[SyntheticData], split: str, seed: int) -> list[PromptRecord]:
    """Synthetic word problems as SFT records: the train split with (possibly imperfect, ``syn.noise``) worked
    solutions, or the test split's clean solutions (for the eval loss). ``syn.seed`` defaults to ``seed``."""
    syn = syn or SyntheticData()
    seed = syn.seed if syn.seed is not None else seed
    if split == "train":
        rows = sft_records(syn.n, seed=seed, config=syn, noise=syn.noise or DemoNoise())
        return [PromptRecord(r["question"], r["response"], i, {"answer": r["answer"], "noise": r["noise"]})
                for i, r in enumerate(rows)]
    return [PromptRecord(p.question, p.solution, i, {"answer": p.answer})
            for i, p in enumerate(generate_problems(syn.n, "test", seed=seed, config=syn))]


def load_sft_data(cfg: SFTConfig, tokenizer) -> tuple[list[SFTExample], list[SFTExample]]:
    """Tokenised train and eval examples (eval may be empty)."""
    d = cfg.data
    if d.train == "synthetic":
        records = synthetic_sft_records(d.synthetic, "train", cfg.train.seed)
    elif d.train:
        records = load_sft_records(d.train, d.split, d.question_key, d.response_key)
    else:
        raise ValueError("data.train is empty: give a file, a hub id, or 'synthetic'")
    if d.limit:
        records = records[:d.limit]
    eval_records: list[PromptRecord] = []
    if d.eval == "synthetic":
        held_out = dataclasses.replace(d.synthetic or SyntheticData(), n=d.eval_limit or 256, noise=None)
        eval_records = synthetic_sft_records(held_out, "test", cfg.train.seed)
    elif d.eval:
        eval_records = load_sft_records(d.eval, d.eval_split, d.question_key, d.response_key)
    elif d.eval_fraction > 0:
        k = max(1, int(round(len(records) * d.eval_fraction)))
        order = torch.randperm(len(records), generator=torch.Generator().manual_seed(cfg.train.seed)).tolist()
        held = set(order[:k])
        eval_records = [r for i, r in enumerate(records) if i in held]
        records = [r for i, r in enumerate(records) if i not in held]
    if d.eval_limit:
        eval_records = eval_records[:d.eval_limit]
    train = tokenize_records(tokenizer, records, d.template, d.max_len)
    evals = tokenize_records(tokenizer, eval_records, d.template, d.max_len) if eval_records else []
    return train, evals


# ------------------------------------------------------------------------------------------------ trainer
class _GracefulStop:
    """SIGTERM / SIGINT set a flag; the trainer finishes its step, saves the model and returns."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame):
        logger.warning("signal %d: stopping after this step and saving", signum)
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


class SFTTrainer:
    """Builds the model, data and strategy from an ``SFTConfig``; ``train()`` runs to the end and saves."""

    def __init__(self, cfg: SFTConfig):
        self.cfg = cfg
        t = cfg.train
        seed_everything(t.seed)
        self.out_dir = Path(cfg.logging.output_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.model_path = model_path(cfg.model.pretrain, cfg.model.tiny, self.out_dir)
        self.tokenizer = load_tokenizer(cfg.model.tokenizer or self.model_path, padding_side="left",
                                        trust_remote_code=cfg.model.trust_remote_code)
        self.train_examples, self.eval_examples = load_sft_data(cfg, self.tokenizer)
        if t.batch_size > len(self.train_examples):
            raise ValueError(f"train.batch_size {t.batch_size} is larger than the data ({len(self.train_examples)} "
                             f"examples)")
        self.data = PromptDataset([PromptRecord("", i, i) for i in range(len(self.train_examples))],
                                  batch_size=t.batch_size, seed=t.seed)
        self.steps_per_epoch = self.data.batches_per_epoch
        self.total_steps = t.max_steps or t.epochs * self.steps_per_epoch
        self.rank, self.world = 0, 1
        if t.strategy == "deepspeed":
            dist.init_from_env()
            self.rank, self.world = dist.rank(), dist.world_size()
            if t.batch_size % self.world:
                raise ValueError(f"train.batch_size {t.batch_size} must be divisible by the {self.world} ranks")
        self.device = resolve_device(t.device) if t.strategy == "torch" else None
        self.trainable = self._make_trainable()
        self.model = self.trainable.module
        if self.device is None:
            self.device = next(self.model.parameters()).device
        self.step = 0
        self.train_seconds = 0.0
        self.run_id = checkpoint.new_run_id()  # restore() continues the checkpoint's run
        self.history: list[dict] = []

    # ---- building -------------------------------------------------------------------------------------
    def _make_trainable(self):
        """The policy model and its optimizer through the role factory (``trainer.roles``): the same loading and
        training-dtype rules as the RL policy."""
        t = self.cfg.train
        per_rank = t.batch_size // self.world
        opt = OptimSettings(lr=t.lr, lr_lambda=lr_lambda(t.lr_scheduler, t.schedule_steps or self.total_steps,
                                                         t.warmup_ratio, t.min_lr_ratio),
                            strategy=t.strategy, zero_stage=t.zero_stage, dtype=self.cfg.model.dtype,
                            offload_optimizer=t.offload_optimizer, weight_decay=t.weight_decay, betas=t.adam_betas,
                            max_grad_norm=t.max_grad_norm, micro_batch_size=t.micro_batch_size,
                            grad_accumulation=max(1, math.ceil(per_rank / t.micro_batch_size)))
        device = self.device if t.strategy == "torch" else None  # DeepSpeed places the module itself
        loader = causal_lm_loader(self.model_path, self.cfg.model, t.strategy, device)
        return build_trainable(loader, opt, self.world)

    # ---- one step ---------------------------------------------------------------------------------------
    def _all_reduce(self, x: float, op: str = "sum") -> float:
        if self.world == 1:
            return x
        return dist.all_reduce_sum(x) if op == "sum" else dist.all_reduce_max(x)

    def train_step(self, examples: list[SFTExample]) -> dict:
        """One optimizer step on this rank's share of ``examples`` (the whole step's examples)."""
        t = self.cfg.train
        mine = examples[self.rank::self.world]
        mbs = micro_batches(mine, self.tokenizer.pad_token_id, t.micro_batch_size, t.packing,
                            t.pack_length or self.cfg.data.max_len)
        local_tokens = float(sum(m.num_target_tokens for m in mbs))
        total_tokens = self._all_reduce(local_tokens)
        # DP engines average gradients over ranks, so each rank divides by (global tokens / world size).
        normalizer = max(total_tokens, 1.0) / self.world
        n_micro = int(self._all_reduce(float(len(mbs)), "max"))  # every rank runs the same number of backwards
        self.model.train()
        loss_sum, grad_norm = 0.0, None
        for i in range(n_micro):
            boundary = i == n_micro - 1
            if i < len(mbs):
                nll = token_nll_sum(self.model, mbs[i].to(self.device))
                loss_sum += float(nll.detach())
                loss = nll / normalizer
            else:  # this rank has fewer micro-batches: a zero loss that still runs the backward collectives
                dummy = mbs[0].to(self.device)
                loss = token_nll_sum(self.model, dummy) * 0.0
            norm = self.trainable.micro_step(loss, boundary)
            if norm is not None:
                grad_norm = norm
        loss_total = self._all_reduce(loss_sum)
        return {"train/loss": loss_total / max(total_tokens, 1.0), "train/grad_norm": grad_norm,
                "train/lr": self.trainable.current_lr(), "train/target_tokens": total_tokens,
                "train/micro_batches": float(n_micro)}

    @torch.no_grad()
    def eval_loss(self) -> Optional[float]:
        """Token-mean NLL of the eval responses (every rank evaluates its share)."""
        if not self.eval_examples:
            return None
        self.model.eval()
        mine = self.eval_examples[self.rank::self.world]
        total, tokens = 0.0, 0.0
        for mb in micro_batches(mine, self.tokenizer.pad_token_id, self.cfg.eval.micro_batch_size):
            total += float(token_nll_sum(self.model, mb.to(self.device)))
            tokens += mb.num_target_tokens
        return self._all_reduce(total) / max(self._all_reduce(tokens), 1.0)

    # ---- the loop ---------------------------------------------------------------------------------------
    def train(self, on_step: Optional[Callable[[int, dict], None]] = None,
              should_stop: Optional[Callable[[], bool]] = None) -> Path:
        """Train until a stop condition, write the final HF model (+ tokenizer) and return its directory.

        ``on_step(step, metrics)`` is called after every step (the quickstart's control evaluates there);
        ``should_stop()`` is asked after every step too (an external stop, like SIGTERM).
        """
        t, lg = self.cfg.train, self.cfg.logging
        metrics_path = self.out_dir / "metrics.jsonl"
        if self.step == 0 and metrics_path.exists() and self.rank == 0:
            metrics_path.unlink()
        bar = None
        if lg.progress_bar and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc=self.cfg.name, dynamic_ncols=True)
        stop_reason = "max_steps"
        with _GracefulStop() as stop:
            while self.step < self.total_steps:
                t0 = time.perf_counter()
                batch = [self.train_examples[r.index] for r in self.data.next_batch()]
                m = self.train_step(batch)
                self.step += 1
                dt = time.perf_counter() - t0
                self.train_seconds += dt
                m.update({"step": self.step, "epoch": self.step / self.steps_per_epoch, "time/step": dt,
                          "time/train_total": self.train_seconds,
                          "throughput/tokens_per_s": m["train/target_tokens"] / max(dt, 1e-9)})
                every = self.cfg.eval.every_steps
                if every and self.step % every == 0:
                    m["eval/loss"] = self.eval_loss()
                if on_step is not None:
                    on_step(self.step, m)
                self._log(m, metrics_path, bar)
                if lg.save_steps and self.step % lg.save_steps == 0:
                    self.save_checkpoint()
                timed_out = t.max_time_s is not None and self._all_reduce(
                    float(self.train_seconds >= t.max_time_s), "max") > 0
                asked = stop.requested or (should_stop is not None and should_stop())
                stopped = self._all_reduce(float(asked), "max") > 0
                if timed_out or stopped:
                    stop_reason = "max_time_s" if timed_out else "signal"
                    break
        if bar:
            bar.close()
        final = {"step": self.step, "stop_reason": stop_reason, "time/train_total": self.train_seconds}
        final_eval = self.eval_loss()
        if final_eval is not None:
            final["eval/loss"] = final_eval
        self._log(final, metrics_path, None)
        return self.save_model(self.out_dir / "model", extra=final)

    def _log(self, m: dict, path: Path, bar) -> None:
        if self.rank != 0:
            return
        self.history.append(m)
        with path.open("a") as f:
            f.write(json.dumps({k: v for k, v in m.items() if v is not None}) + "\n")
        if bar is not None:
            bar.update(1)
            if "train/loss" in m:
                bar.set_postfix(loss=f"{m['train/loss']:.3f}", lr=f"{m['train/lr']:.2e}")
        elif "train/loss" in m and self.step % max(1, self.cfg.logging.log_every_steps) == 0:
            logger.info("step %d loss %.4f%s", self.step, m["train/loss"],
                        f" eval {m['eval/loss']:.4f}" if m.get("eval/loss") is not None else "")

    # ---- saving -----------------------------------------------------------------------------------------
    def save_model(self, directory: Path, extra: Optional[dict] = None) -> Path:
        """The HF checkpoint (model + tokenizer + generation config) that ``rl-train`` loads."""
        directory = Path(directory)
        if self.cfg.train.strategy == "deepspeed":
            self.trainable.save_pretrained(directory, self.tokenizer)
        elif self.rank == 0:
            directory.mkdir(parents=True, exist_ok=True)
            unwrap_model(self.model).save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
        if self.rank == 0:
            info = {"sft_config": public_dict(self.cfg), "base_model": self.model_path, **(extra or {})}
            (directory / "sft_info.json").write_text(json.dumps(info, indent=2, default=str))
        return directory

    def save_checkpoint(self) -> Path:
        """A resumable training checkpoint (weights, optimizer, schedule, data position, RNG), atomically."""
        tmp = checkpoint.begin(self.out_dir, self.step) if self.rank == 0 else None
        if self.world > 1:
            dist.barrier()
            tmp = checkpoint.checkpoints_dir(self.out_dir) / f".tmp-step_{self.step:06d}"
        self.save_model(tmp / "model")
        if self.cfg.train.strategy == "deepspeed":
            self.trainable.save_state(tmp / "optimizer")
        else:
            self.trainable.save_state(tmp / "optimizer.pt")
        state = {"step": self.step, "data": self.data.state_dict(), "train_seconds": self.train_seconds,
                 "run_id": self.run_id}
        if self.rank == 0:
            return checkpoint.commit(tmp, self.step, state, keep=self.cfg.logging.keep_checkpoints)
        return tmp

    def restore(self, ckpt: Path) -> None:
        state = checkpoint.load_state(ckpt)
        if self.cfg.train.strategy == "deepspeed":
            self.trainable.load_state(ckpt / "optimizer")  # weights included
        else:
            from safetensors.torch import load_file

            weights = {}
            for f in sorted((ckpt / "model").glob("*.safetensors")):
                weights.update(load_file(str(f)))
            load_weights(self.model, weights)
            self.trainable.load_state(ckpt / "optimizer.pt")
        self.data.load_state_dict(state["data"])
        self.step = int(state["step"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.run_id = state.get("run_id")


def run_sft(cfg: SFTConfig, resume: bool = False, on_step=None) -> Path:
    """Build, optionally resume from ``<output_dir>/checkpoints/latest``, train, save; returns the model dir."""
    trainer = SFTTrainer(cfg)
    if resume:
        ckpt = checkpoint.latest(cfg.logging.output_dir)
        if ckpt is None:
            logger.warning("--resume: no checkpoint under %s, starting from scratch", cfg.logging.output_dir)
        else:
            trainer.restore(ckpt)
            logger.info("resumed from %s at step %d", ckpt, trainer.step)
    return trainer.train(on_step=on_step)
