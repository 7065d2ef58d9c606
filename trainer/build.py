"""Build a run from its config: the driver's side (data, tokenizer, plan, reward, tracker, eval hook, resume) once,
then the workers through the role factory (``trainer.roles``) for a placement.

``build_run(cfg)`` places every worker in this process (CPU or one GPU). The Ray placement
(``trainer.distributed.launch``) prepares the same driver side with :func:`prepare_driver`, builds actor groups
whose ranks call the same role factory, and hands them to the same ``RLLoop`` through :func:`make_loop`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.grading_backend import make_backend
from eval.harness import evaluate
from mathrl_core.completion import per_prompt_completions
from mathrl_core.models.loading import load_tokenizer
from mathrl_core.records import PromptRecord, load_records
from mathrl_core.rollout.registry import get_backend
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import build_prompt, encode_prompt
from trainer import checkpoint
from trainer.async_rl.loop import AsyncRLLoop
from trainer.async_rl.rollout_process import ProcessRollout
from trainer.config import RLConfig
from trainer.config_tree import public_dict
from trainer.data.datasets import PromptDataset
from trainer.data.synthetic import SyntheticData, synthetic_records
from trainer.plan import RunPlan, make_plan
from trainer.reward import RewardScorer
from trainer.rl_loop import RLLoop
from trainer.roles import Placement, build_worker, model_path, seed_everything
from trainer.tracking import Tracker

logger = logging.getLogger(__name__)


def load_train_records(cfg: RLConfig) -> list[PromptRecord]:
    d = cfg.data
    if d.train == "synthetic":
        syn = d.synthetic or SyntheticData()
        rows = synthetic_records(syn.n, "train", seed=syn.seed if syn.seed is not None else cfg.train.seed,
                                 config=syn)
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


def build_eval_fn(cfg: RLConfig, tokenizer, rollout, output_dir: Path, reward: RewardScorer):
    """The eval hook: greedy (or sampled) generation with the current policy through the rollout backend,
    graded by the eval harness through the run's own reward service with the run's reward scheme and token, so
    eval extracts and compares answers exactly like the training reward."""
    e = cfg.eval
    if not e.every_steps or not (e.benchmarks or e.data):
        return None

    def generate_fn(prompts, n):
        sampling = SamplingConfig(n=n, temperature=e.temperature, top_p=1.0,
                                  max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                                  stop=list(cfg.rollout.stop), seed=cfg.train.seed)
        return per_prompt_completions(rollout.generate(prompts, sampling), len(prompts), n)

    def eval_fn(step: int) -> dict:
        grader = make_backend(url=reward.url, token=reward.token, scheme=cfg.reward.scheme)
        try:
            return evaluate(generate_fn, e.data or e.benchmarks, n=e.n, limit=e.limit, data_dir=e.data_dir,
                            tokenizer=tokenizer, template=cfg.data.template, step=step, grader=grader,
                            out_dir=output_dir / "eval" / f"step_{step:06d}")
        finally:
            grader.close()

    return eval_fn


@dataclass
class Driver:
    """What the driver process holds for a run, whatever the workers' placement."""

    cfg: RLConfig
    out_dir: Path
    model_path: str
    tokenizer: Any
    data: PromptDataset
    plan: RunPlan
    checkpoint: Optional[Path]   # the checkpoint to resume from (None: a fresh run)
    start_step: int


def prepare_driver(cfg: RLConfig, resume: bool = False) -> Driver:
    """Seed, output directory, model path, tokenizer, data (long prompts dropped), plan and resume point."""
    seed_everything(cfg.train.seed)
    out_dir = Path(cfg.logging.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = model_path(cfg.model.pretrain, cfg.model.tiny, out_dir)
    tokenizer = load_tokenizer(cfg.model.tokenizer or path, trust_remote_code=cfg.model.trust_remote_code)
    records = filter_long_prompts(load_train_records(cfg), tokenizer, cfg)
    data = PromptDataset(records, batch_size=cfg.rollout.prompts_per_step, seed=cfg.train.seed)
    ckpt = checkpoint.latest(out_dir) if resume else None
    if resume and ckpt is None:
        logger.warning("--resume: no checkpoint under %s, starting from scratch", out_dir)
    start = int(checkpoint.load_state(ckpt)["step"]) if ckpt is not None else 0
    return Driver(cfg, out_dir, path, tokenizer, data, make_plan(cfg, len(records)), ckpt, start)


def make_loop(d: Driver, *, rollout, policy, ref=None, critic=None, eval_rollout=None) -> RLLoop:
    """The ``RLLoop`` over the given workers (local objects or Ray groups), with the reward service, the tracker
    and the eval hook (generating with ``eval_rollout``, default ``rollout``); restored from the resume
    checkpoint if there is one. With ``rollout.max_staleness >= 1`` the asynchronous loop
    (``trainer.async_rl``), whose ``rollout`` takes versioned weight pushes."""
    cfg = d.cfg
    reward = RewardScorer(cfg.reward)
    tracker = Tracker(d.out_dir, d.plan.total_steps, tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                      wandb_project=cfg.logging.wandb_project, run_name=cfg.name, config=public_dict(cfg),
                      progress_bar=cfg.logging.progress_bar, resume_step=d.start_step)
    eval_fn = build_eval_fn(cfg, d.tokenizer, eval_rollout or rollout, d.out_dir, reward)
    loop = (AsyncRLLoop if cfg.is_async else RLLoop)(
        cfg, tokenizer=d.tokenizer, data=d.data, rollout=rollout, reward=reward, policy=policy, ref=ref,
        critic=critic, tracker=tracker, eval_fn=eval_fn, total_steps=d.plan.total_steps)
    if d.checkpoint is not None:
        loop.restore(d.checkpoint)
        logger.info("resumed from %s at step %d", d.checkpoint, loop.step_num)
    return loop


def build_run(cfg: RLConfig, resume: bool = False) -> RLLoop:
    """Everything for one local run; returns the ``RLLoop`` (restored from the latest checkpoint if asked)."""
    d = prepare_driver(cfg, resume)
    here = Placement.local(cfg.train.device)
    updates = d.plan.total_optimizer_updates
    policy = build_worker(cfg, "policy", here, model_path=d.model_path, total_updates=updates)
    ref = (build_worker(cfg, "reference", here, model_path=d.model_path, policy=policy)
           if cfg.uses_reference else None)
    critic = (build_worker(cfg, "critic", here, model_path=d.model_path, total_updates=updates)
              if cfg.uses_critic else None)
    if not cfg.is_async:
        rollout = build_worker(cfg, "rollout", here, model_path=d.model_path, policy=policy, tokenizer=d.tokenizer)
        return make_loop(d, rollout=rollout, policy=policy, ref=ref, critic=critic)
    # asynchronous: the rollout in a process of its own; the eval hook generates with the current policy here
    # (an in-process backend shares the policy module) or, for an engine, through that process
    rollout = ProcessRollout(cfg, d.model_path, device=str(here.device))
    (d.out_dir / "rollout_process.json").write_text(json.dumps({"pid": rollout.pid}))  # for operators (and tests)
    try:
        in_process = not get_backend(cfg.rollout.backend).remote_capable
        eval_rollout = (build_worker(cfg, "rollout", here, model_path=d.model_path, policy=policy,
                                     tokenizer=d.tokenizer) if in_process else rollout)
        return make_loop(d, rollout=rollout, policy=policy, ref=ref, critic=critic, eval_rollout=eval_rollout)
    except BaseException:
        rollout.close()
        raise
