"""Atomic checkpoints: a step directory is written under a temporary name and renamed into place.

    <output_dir>/checkpoints/step_000004/   policy/, critic/ (each worker writes its own part),
                                            trainer_state.json (step, data position, ...), rng.pt
    <output_dir>/checkpoints/latest         text file naming the newest complete step directory

A crash while saving leaves only a ``.tmp-*`` directory, which the next save removes; ``latest`` is
replaced with ``os.replace`` after the rename, so it always names a complete checkpoint.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

STATE_FILE = "trainer_state.json"


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def begin(output_dir: str | Path, step: int) -> Path:
    """Create and return a fresh temporary directory for step ``step`` (stale temporaries are removed)."""
    root = checkpoints_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-step_{step:06d}"
    tmp.mkdir()
    return tmp


def commit(tmp: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write the trainer state and RNG states into ``tmp``, rename it to ``step_XXXXXX``, point ``latest`` at
    it, and keep only the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True))
    torch.save(rng_state(), tmp / "rng.pt")
    final = tmp.parent / f"step_{step:06d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_atomic(tmp.parent / "latest", final.name)
    if keep > 0:
        steps = sorted(p for p in tmp.parent.glob("step_*") if p.is_dir())
        for old in steps[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest(output_dir: str | Path) -> Optional[Path]:
    """The newest complete checkpoint directory, or None."""
    root = checkpoints_dir(output_dir)
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{pointer} names {path}, which is not a complete checkpoint")
    return path


def load_state(ckpt: Path) -> dict[str, Any]:
    state = json.loads((ckpt / STATE_FILE).read_text())
    rng = ckpt / "rng.pt"
    if rng.is_file():
        set_rng_state(torch.load(rng, weights_only=False))
    return state


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
