"""``rl-train --config FILE [key.sub=value ...] [--resume] [--dry-run]``"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import yaml

from trainer.config import RLConfig
from trainer.config_tree import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rl-train", description="PPO / GRPO-family RL for math reasoning")
    p.add_argument("--config", "-c", help="recipe YAML file")
    p.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/latest")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve the config and print the plan (roles, resources, batch arithmetic, data) "
                        "without loading weights")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.actor_lr=1e-6 rollout.n=8")
    return p


def dry_run(cfg: RLConfig) -> dict:
    from trainer.build import load_train_records, plan

    try:
        records = load_train_records(cfg)
        n = len(records)
    except (FileNotFoundError, ValueError) as e:
        if cfg.data.train and not Path(cfg.data.train).suffix and "/" in cfg.data.train:
            n = -1  # a hub id: unknown without downloading
        else:
            raise
    info = plan(cfg, max(n, cfg.rollout.prompts_per_step))
    info["records"] = n if n >= 0 else "unknown (hub dataset)"
    info["model"] = cfg.model.pretrain or f"tiny local model {cfg.model.tiny}"
    info["algorithm"] = cfg.algorithm.advantage
    info["rollout_backend"] = cfg.rollout.backend
    info["strategy"] = cfg.train.strategy + (f" ZeRO-{cfg.train.zero_stage}" if cfg.train.strategy == "deepspeed" else "")
    info["placement"] = "ray" if cfg.ray.enabled else "local"
    info["reward"] = {"url": cfg.reward.url or "local service on a free loopback port", "scheme": cfg.reward.scheme}
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
        except (FileNotFoundError, ValueError) as e:
            print(f"rl-train: {e}", file=sys.stderr)
            return 2
        print(json.dumps(info, indent=2, default=str))
        return 0
    out = Path(cfg.logging.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))
    if cfg.ray.enabled:
        from trainer.distributed.launch import run_distributed

        return run_distributed(cfg, resume=args.resume)
    from trainer.build import build_run

    loop = build_run(cfg, resume=args.resume)
    try:
        loop.run()
    finally:
        loop.reward.close()
        if loop.tracker:
            loop.tracker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
