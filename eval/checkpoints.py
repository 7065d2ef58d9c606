"""Find a training run's checkpoints (for ``rl-eval curve``) and the tokenizer that goes with them.

The trainer writes ``<run>/checkpoints/step_000040/policy/model`` (``save_pretrained`` of the policy: weights
and config, no tokenizer; a LoRA adapter when the run used LoRA) and ``<run>/config.yaml`` (the resolved
config, whose ``model.tokenizer`` / ``model.pretrain`` name the tokenizer; a tiny local model lives in
``<run>/tiny_model``). Plain HF model directories work too.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional, Union

MODEL_SUBDIRS = ("policy/model", "policy", "actor/model", "actor", "model", ".")


def is_model_dir(d: Path) -> bool:
    """A full HF model (config.json) or a peft adapter (adapter_config.json)."""
    return (d / "config.json").is_file() or (d / "adapter_config.json").is_file()


def has_tokenizer(d: Path) -> bool:
    return any((d / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def checkpoint_step(d: Path) -> int:
    """``trainer_state.json``'s step, else the last number in the directory name (``step_000040`` -> 40)."""
    state = d / "trainer_state.json"
    if state.is_file():
        step = json.loads(state.read_text()).get("step")
        if step is not None:
            return int(step)
    nums = re.findall(r"\d+", d.name)
    if not nums:
        raise ValueError(f"cannot tell the training step of {d}")
    return int(nums[-1])


def find_checkpoints(run: Union[str, Path, None] = None, explicit: tuple = ()) -> list:
    """``[(step, model_dir)]`` sorted by step, from ``<run>/checkpoints/step_*`` and/or explicit checkpoint
    directories; a clear error when a directory holds no model."""
    dirs = [Path(d) for d in explicit]
    if run:
        root = Path(run) / "checkpoints"
        if not root.is_dir():
            root = Path(run)
        dirs += sorted(p for p in root.glob("step_*") if p.is_dir())
    found = []
    for d in dirs:
        model = next((d / s for s in MODEL_SUBDIRS if is_model_dir(d / s)), None)
        if model is None:
            raise FileNotFoundError(f"no HF model or LoRA adapter in {d} (looked in {', '.join(MODEL_SUBDIRS)})")
        found.append((checkpoint_step(d), str(model.resolve())))
    if not found:
        raise FileNotFoundError(f"no checkpoints found (looked in {run!r}/checkpoints/step_* and {list(explicit)})")
    return sorted(found)


def run_tokenizer(run: Union[str, Path, None]) -> Optional[str]:
    """The tokenizer a trainer run used, from ``<run>/config.yaml`` (or its tiny local model)."""
    if not run:
        return None
    run = Path(run)
    cfg_file = run / "config.yaml"
    if cfg_file.is_file():
        import yaml

        model = (yaml.safe_load(cfg_file.read_text()) or {}).get("model") or {}
        for key in ("tokenizer", "pretrain"):
            if model.get(key):
                return str(model[key])
    tiny = run / "tiny_model"
    return str(tiny) if has_tokenizer(tiny) else None


def resolve_tokenizer(model_dir: Union[str, Path], run: Union[str, Path, None] = None,
                      explicit: Optional[str] = None) -> Optional[str]:
    """``explicit``, else the model directory itself when it has tokenizer files, else the run's tokenizer,
    else the LoRA adapter's base model; ``None`` lets the loader try the model path."""
    if explicit:
        return explicit
    d = Path(model_dir)
    if has_tokenizer(d):
        return str(d)
    tok = run_tokenizer(run)
    if tok:
        return tok
    adapter = d / "adapter_config.json"
    if adapter.is_file():
        return json.loads(adapter.read_text()).get("base_model_name_or_path")
    return None
