"""Per-step metrics: ``<output_dir>/metrics.jsonl`` (one JSON object per step, key ``step``), TensorBoard,
optional wandb, and a progress bar on the terminal."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Optional


def _jsonable(v: Any):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else (1e308 if v > 0 else -1e308)
    return v


class Tracker:
    def __init__(self, output_dir: str | Path, total_steps: int, *, tensorboard: bool = True,
                 wandb: bool = False, wandb_project: str = "mathrl", run_name: str = "run",
                 config: Optional[dict] = None, progress_bar: bool = True, resume_step: int = 0):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "metrics.jsonl"
        if resume_step > 0:
            self._truncate_after(resume_step)
        elif self.path.exists():
            self.path.unlink()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(log_dir=str(self.dir / "tensorboard"))
            except ImportError:  # tensorboard not installed: the jsonl is the record
                print("[tracking] tensorboard not installed; writing metrics.jsonl only", file=sys.stderr)
        self._wandb = None
        if wandb:
            import wandb as _wandb
            self._wandb = _wandb.init(project=wandb_project, name=run_name, config=config, resume="allow")
        self._bar = None
        if progress_bar:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total_steps, initial=resume_step, desc=run_name, dynamic_ncols=True)

    def _truncate_after(self, step: int) -> None:
        """On resume, drop lines logged after the checkpoint so the file reads as one uninterrupted run."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by the crash
        self.path.write_text("".join(k + "\n" for k in kept))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        numeric = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for k, v in numeric.items():
                if k != "step":
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numeric, step=step)
        if self._bar is not None:
            show = {k: f"{numeric[k]:.3g}" for k in ("reward/mean", "reward/accuracy", "policy/kl",
                                                     "response/length_mean") if k in numeric}
            self._bar.set_postfix(show, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(output_dir: str | Path) -> list[dict]:
    path = Path(output_dir) / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
