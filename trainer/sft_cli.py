"""``rl-sft --config FILE [key.sub=value ...] [--resume] [--dry-run]``: supervised fine-tuning whose output
(``<output_dir>/model``) is an HF checkpoint for ``rl-train model.pretrain=...``."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from trainer import checkpoint
from trainer.config_tree import ConfigError, load_config
from trainer.sft import SFTConfig, run_sft, synthetic_sft_records
from trainer.sft_data import load_sft_records
from trainer.strategy import dist


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rl-sft", description="SFT on (question, response) data, loss on responses")
    p.add_argument("--config", "-c", help="recipe YAML file")
    p.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/latest")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve the config, count the data and print the batch plan without loading weights")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-5 data.train=FILE")
    return p


def dry_run(cfg: SFTConfig) -> dict:
    d, t = cfg.data, cfg.train
    if d.train == "synthetic":
        n = len(synthetic_sft_records(d.synthetic, "train", t.seed))
    else:
        n = len(load_sft_records(d.train, d.split, d.question_key, d.response_key))
    n = min(n, d.limit) if d.limit else n
    held_out = 0
    if not d.eval and d.eval_fraction > 0:
        held_out = max(1, int(round(n * d.eval_fraction)))
        n -= held_out
    steps_per_epoch = max(1, n // t.batch_size)
    return {"records": n, "held_out_for_eval": held_out, "eval": d.eval or ("train split" if held_out else None),
            "batch_size": t.batch_size, "micro_batch_size": t.micro_batch_size,
            "grad_accumulation_per_rank": -(-t.batch_size // t.micro_batch_size) if not t.packing else "packed rows",
            "packing": t.packing, "steps_per_epoch": steps_per_epoch,
            "total_steps": t.max_steps or t.epochs * steps_per_epoch, "max_time_s": t.max_time_s,
            "model": cfg.model.pretrain or f"tiny local model {asdict(cfg.model.tiny) if cfg.model.tiny else None}",
            "strategy": t.strategy + (f" ZeRO-{t.zero_stage}" if t.strategy == "deepspeed" else ""),
            "output": str(Path(cfg.logging.output_dir) / "model")}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(SFTConfig, args.config, args.overrides)
    except ConfigError as e:
        print(f"rl-sft: config error: {e}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            print(json.dumps(dry_run(cfg), indent=2, default=str))
            return 0
        # OutputDirInUse is a ValueError: exit 2 with its message
        checkpoint.open_run_dir(cfg.logging.output_dir, cfg, args.resume)
        try:
            model_dir = run_sft(cfg, resume=args.resume)
        finally:
            if cfg.train.strategy == "deepspeed":
                dist.destroy()
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"rl-sft: {e}", file=sys.stderr)
        return 2
    print(f"rl-sft: model saved to {model_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
