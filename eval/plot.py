"""A metric against training step, one line per benchmark plus the average (matplotlib, Agg backend)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence, Union

from eval.report import TITLES, load_summary


def step_of(path: Union[str, Path], summary: Optional[dict] = None) -> int:
    """The training step of an eval run: ``summary["step"]``, else the last number in the directory name
    (``step_000040`` -> 40)."""
    if summary is not None and isinstance(summary.get("step"), int):
        return summary["step"]
    p = Path(path)
    name = p.parent.name if p.name == "summary.json" else p.name
    nums = re.findall(r"\d+", name)
    if not nums:
        raise ValueError(f"cannot tell the training step of {path}: no 'step' in its summary and no number in its name")
    return int(nums[-1])


def curve_points(paths: Sequence[Union[str, Path]], metric: str) -> dict:
    """``{series: [(step, value), ...]}`` sorted by step; series are benchmarks and ``"Avg."``."""
    series: dict = {}
    for p in paths:
        s = load_summary(p)
        step = step_of(p, s)
        for b, m in s["benchmarks"].items():
            if m.get(metric) is not None:
                series.setdefault(TITLES.get(b, b), []).append((step, m[metric]))
        if s.get("average", {}).get(metric) is not None and len(s["benchmarks"]) > 1:
            series.setdefault("Avg.", []).append((step, s["average"][metric]))
    if not series:
        raise ValueError(f"no run among {len(paths)} has metric {metric!r}")
    return {k: sorted(v) for k, v in series.items()}


def plot_curve(paths: Sequence[Union[str, Path]], metric: str = "pass@1", out: Union[str, Path] = "curve.png",
               title: Optional[str] = None) -> Path:
    """Write a PNG of ``metric`` (percent for rates) against training step for the given eval runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = curve_points(paths, metric)
    scale = 1.0 if metric == "avg_len" else 100.0
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, xy in pts.items():
        xs, ys = zip(*xy)
        avg = name == "Avg."
        ax.plot(xs, [y * scale for y in ys], marker="o", markersize=3, linewidth=2.5 if avg else 1.2,
                color="black" if avg else None, label=name, zorder=3 if avg else 2)
    ax.set_xlabel("training step")
    ax.set_ylabel(metric + ("" if metric == "avg_len" else " (%)"))
    ax.set_title(title or f"{metric} vs training step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
