"""Atomic checkpoints: a step directory is written under a temporary name and renamed into place.

    <output_dir>/checkpoints/step_000004/   policy/, critic/ (each worker writes its own part),
                                            trainer_state.json (step, data position, ...), rng.pt
    <output_dir>/checkpoints/latest         text file naming the newest complete step directory

A crash while saving leaves only a ``.tmp-*`` directory, which the next save removes; ``latest`` is
replaced with ``os.replace`` after the rename, so it always names a complete checkpoint.

Every checkpoint records the id of the run that wrote it (``run_id`` in trainer_state.json; a resumed run keeps
its id). Pruning (``keep``) only removes older checkpoints of the same run, never the one just written and
never another run's. The CLIs refuse to start a new run in a directory that holds another one
(``check_new_run``): continue it with ``--resume`` or give the new run its own ``logging.output_dir``.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import yaml

from trainer.config_tree import public_dict

STATE_FILE = "trainer_state.json"


class OutputDirInUse(ValueError):
    """A new run was asked to write into a directory that holds another run."""


def new_run_id() -> str:
    """A fresh run id: start time plus random hex, e.g. ``20261203-141502-9f3a1c``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


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
    it, and keep only the newest ``keep`` checkpoints of this run (``state["run_id"]``; ``keep <= 0`` keeps
    all). Pruning never removes the new checkpoint or another run's; an older one of the same step name is
    replaced."""
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True))
    torch.save(rng_state(), tmp / "rng.pt")
    final = tmp.parent / f"step_{step:06d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_atomic(tmp.parent / "latest", final.name)
    if keep > 0:
        _prune(final, state.get("run_id"), step, keep)
    return final


def _prune(final: Path, run_id: Optional[str], step: int, keep: int) -> None:
    """Remove this run's checkpoints older than its newest ``keep`` (in the order the run wrote them: a run's
    steps only grow). A directory whose state cannot be read belongs to no run and is left alone."""
    mine = []
    for p in final.parent.glob("step_*"):
        info = _recorded(p)
        if p != final and info is not None and info[0] == run_id and info[1] < step:
            mine.append((info[1], p))
    mine.sort()
    for _, old in mine[:max(0, len(mine) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def _recorded(ckpt: Path) -> Optional[tuple[Optional[str], int]]:
    """``(run_id, step)`` recorded in a checkpoint (run_id None for checkpoints written before run ids)."""
    try:
        state = json.loads((ckpt / STATE_FILE).read_text())
        return state.get("run_id"), int(state["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def existing_run(output_dir: str | Path) -> Optional[str]:
    """What in ``output_dir`` shows that a run already used it (its checkpoints or its metrics), or None."""
    out = Path(output_dir)
    root = checkpoints_dir(out)
    found = sorted(p.name for p in root.glob("step_*") if p.is_dir()) if root.is_dir() else []
    if found:
        info = _recorded(root / found[-1])
        run = f", run {info[0]}" if info and info[0] else ""
        return f"{len(found)} checkpoint(s), the newest {found[-1]}{run}"
    if (root / "latest").is_file():
        return f"{root / 'latest'}"
    metrics = out / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        return f"{metrics}"
    return None


def check_new_run(output_dir: str | Path, resume: bool) -> None:
    """Raise ``OutputDirInUse`` when a new (not ``--resume``) run would write into a directory holding another
    run: its checkpoints would mix with the new run's and its metrics would be overwritten."""
    if resume:
        return
    found = existing_run(output_dir)
    if found:
        raise OutputDirInUse(
            f"{output_dir} already holds a run ({found}). Continue that run with --resume, give the new run its "
            f"own directory (logging.output_dir=...), or delete {output_dir} first.")


def open_run_dir(output_dir: str | Path, cfg, resume: bool) -> Path:
    """The output directory of a run, ready to write: refused if it holds another run (``check_new_run``), created,
    with the run's config (secrets redacted: ``config_tree.public_dict``) in ``config.yaml``."""
    out = Path(output_dir)
    check_new_run(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(public_dict(cfg), sort_keys=False))
    return out


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
