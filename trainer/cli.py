"""``rl-train --config FILE [key.sub=value ...] [--resume] [--dry-run]``"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from mathrl_core.data_files import data_dir
from trainer import checkpoint
from trainer.async_rl.errors import RolloutPipelineError
from trainer.build import build_run, load_train_records
from trainer.config import RLConfig
from trainer.config_tree import ConfigError, load_config, public_dict
from trainer.distributed.launch import run_distributed, stopped_message, validate_ray
from trainer.plan import make_plan


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rl-train", description="PPO / GRPO-family RL for math reasoning")
    p.add_argument("--config", "-c", help="recipe YAML file")
    p.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/latest")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve the config and print the plan (roles, resources, batch arithmetic, data) "
                        "without loading weights")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.actor_lr=1e-6 rollout.n=8")
    return p


def _is_local_source(source: str) -> bool:
    return source == "synthetic" or Path(source).exists() or any(
        (data_dir() / f"{source}{ext}").is_file() for ext in (".jsonl", ".json", ".parquet"))


def dry_run(cfg: RLConfig) -> dict:
    """The plan of a run without loading weights or touching the network: roles and their resources, batch
    arithmetic, data counts (local data is counted; a hub dataset is named, not downloaded)."""
    n: int | str
    if _is_local_source(cfg.data.train):
        n = len(load_train_records(cfg))
    else:
        n = f"unknown: hub dataset {cfg.data.train!r} is not downloaded in a dry run"
    if cfg.ray.enabled:
        validate_ray(cfg)
    info = make_plan(cfg, n if isinstance(n, int) else cfg.rollout.prompts_per_step).as_dict()
    if not isinstance(n, int):
        info["records"] = n
        info["steps_per_epoch"] = "depends on the dataset size"
        if not cfg.train.total_steps:
            info["total_steps"] = info["total_optimizer_updates"] = "depends on the dataset size"
    info.update({
        "model": cfg.model.pretrain or f"tiny local model {asdict(cfg.model.tiny) if cfg.model.tiny else None}",
        "algorithm": cfg.algorithm.advantage, "loss_agg": cfg.algorithm.loss_agg,
        "kl": {"coef": cfg.algorithm.kl_coef, "estimator": cfg.algorithm.kl_estimator, "mode": cfg.algorithm.kl_mode},
        "rollout_backend": cfg.rollout.backend,
        "strategy": cfg.train.strategy + (f" ZeRO-{cfg.train.zero_stage}" if cfg.train.strategy == "deepspeed" else ""),
        "placement": ("ray" if cfg.ray.enabled else "local (one process)" if not cfg.is_async
                      else "local (trainer + a rollout process)"),
        "asynchronous": ({"max_staleness": cfg.rollout.max_staleness, "partial_rollout": cfg.rollout.partial_rollout,
                          "off_policy_correction": cfg.off_policy} if cfg.is_async else False),
        "reward": {"url": cfg.reward.url or "local service on a free loopback port", "scheme": cfg.reward.scheme},
        "template": cfg.data.template,
        "tools": public_dict(cfg)["rollout"]["tools"],  # multi-turn tool use (None: plain rollouts)
    })
    return info


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(RLConfig, args.config, args.overrides)
    except ConfigError as e:
        print(f"rl-train: config error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        try:
            info = dry_run(cfg)
        except (FileNotFoundError, ValueError) as e:  # ConfigError is a ValueError
            print(f"rl-train: {e}", file=sys.stderr)
            return 2
        print(json.dumps(info, indent=2, default=str))
        return 0
    try:
        checkpoint.open_run_dir(cfg.logging.output_dir, cfg, args.resume)
    except checkpoint.OutputDirInUse as e:
        print(f"rl-train: {e}", file=sys.stderr)
        return 2
    if cfg.ray.enabled:
        return run_distributed(cfg, resume=args.resume)
    try:
        loop = build_run(cfg, resume=args.resume)
    except RolloutPipelineError as e:  # the asynchronous rollout process could not start
        print(stopped_message(e, cfg.logging.output_dir), file=sys.stderr)
        return 1
    try:
        loop.run()
    except RolloutPipelineError as e:
        print(stopped_message(e, cfg.logging.output_dir), file=sys.stderr)
        return 1
    finally:
        loop.reward.close()
        if loop.tracker:
            loop.tracker.close()
        if cfg.is_async:
            loop.rollout.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
