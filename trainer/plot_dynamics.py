"""SimpleRL's training dynamics of a run, from its ``metrics.jsonl``: one PNG, four panels over steps.

    python -m trainer.plot_dynamics RUN_DIR [--out RUN_DIR/dynamics.png] [--window 5]

Panels: reward (mean) with training accuracy; no-answer rate; mean response length (with the truncated fraction);
reflection-word rate (``trainer.rollout_metrics.reflection_rate``: responses with "wait", "recheck", ...). Each
shows the per-step value (thin) and a centred moving average over ``window`` steps (thick): with a few dozen
samples a step, single steps are noisy. Eval-hook points (``eval/<name>/pass@1``) go on the reward panel.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from trainer.tracking import read_metrics

PANELS = [  # (title, [(metric key, label, scale)])
    ("reward", [("reward/mean", "reward (mean)", 1.0), ("reward/accuracy", "accuracy (train samples)", 1.0)]),
    ("no-answer rate (%)", [("reward/no_answer_rate", "no answer", 100.0)]),
    ("response length (tokens)", [("response/length_mean", "mean length", 1.0)]),
    ("reflection-word rate (%)", [("response/reflection_rate", "responses with reflection words", 100.0)]),
]


def moving_average(ys: Sequence[float], window: int) -> list[float]:
    """Centred moving average; the ends average over the steps that exist."""
    half = max(window, 1) // 2
    out = []
    for i in range(len(ys)):
        part = ys[max(0, i - half):i + half + 1]
        out.append(sum(part) / len(part))
    return out


def plot_dynamics(run_dir: str | Path, out: Optional[str | Path] = None, window: int = 5,
                  title: Optional[str] = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"{run_dir}: no metrics.jsonl rows")
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), dpi=120, sharex=True)
    for ax, (panel, series) in zip(axes.flat, PANELS):
        for key, label, scale in series:
            pts = [(r["step"], r[key] * scale) for r in rows if r.get(key) is not None]
            if not pts:
                continue
            xs, ys = zip(*pts)
            line, = ax.plot(xs, ys, linewidth=0.8, alpha=0.35)
            ax.plot(xs, moving_average(ys, window), linewidth=2.0, color=line.get_color(),
                    label=f"{label} ({window}-step avg)")
        if panel == "reward":
            evals = sorted({k for r in rows for k in r if k.startswith("eval/") and k.endswith("/pass@1")})
            for k in evals:
                pts = [(r["step"], r[k]) for r in rows if r.get(k) is not None]
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", linestyle="--", label=k.replace("eval/", "eval ").replace("/", " "))
        if panel.startswith("response length"):
            trunc = [(r["step"], r["response/truncated_frac"]) for r in rows if r.get("response/truncated_frac") is not None]
            if trunc:
                ax2 = ax.twinx()
                xs, ys = zip(*trunc)
                ax2.plot(xs, moving_average([y * 100 for y in ys], window), color="grey", linestyle=":",
                         label="truncated (%)")
                ax2.set_ylabel("truncated (%)", color="grey")
                ax2.set_ylim(0, 100)
        ax.set_title(panel, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("RL step")
    fig.suptitle(title or f"training dynamics: {Path(run_dir).name}", fontsize=11)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "dynamics.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.plot_dynamics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="rl-train output directory (with metrics.jsonl)")
    p.add_argument("--out", default=None)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--title", default=None)
    a = p.parse_args(argv)
    try:
        print(plot_dynamics(a.run, a.out, a.window, a.title))
    except (OSError, ValueError) as e:
        print(f"plot_dynamics: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
