"""Quickstart (``make quickstart``): start the reward service, score a sample batch over HTTP, print a table, stop.

    .venv/bin/python -m scripts.quickstart [--workers 2] [--timeout 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from reward_service.client import start_service

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MATHRL_DATA_DIR", ROOT.parent / "shared" / "data"))

SAMPLES = [
    # (what it shows, completion, gold, scheme)
    ("boxed, equivalent form", "Adding the halves, $x = \\frac{1}{2}$, so the answer is $\\boxed{0.5}$.", "\\frac{1}{2}", None),
    ("\\dfrac vs \\frac", "Hence the probability is $\\boxed{\\dfrac{3}{8}}$.", "\\frac{3}{8}", None),
    ("<answer> tag wins over <think>", "<think>maybe 41?</think><answer>42</answer>", "42", None),
    ("wrong answer", "The sum is $\\boxed{17}$.", "18", None),
    ("truncated \\boxed{", "So the final answer is \\boxed{", "18", None),
    ("GSM8K, last number (correctness)", "She sells 16 - 3 - 4 = 9 eggs, earning 9 * 2 = 18 dollars.",
     "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n#### 18", "correctness"),
    ("AIME gold as a number", "Therefore $m+n = \\boxed{204}$.", 204, "rlinf"),
    ("list of accepted answers", "The solutions are $\\boxed{x=2}$.", ["2", "x=2"], "simplerl+format"),
    ("pathological input", "\\boxed{9^{9^{9^{9^{9^{9}}}}}}", "1", None),
]


def data_samples() -> list:
    """Two real golds from the local MATH-500 file (skipped when the data folder is absent)."""
    path = DATA / "math500.jsonl"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(next(f)) for _ in range(2)]
    return [(f"MATH-500 {r['unique_id']}", f"... so we get $\\boxed{{{r['answer']}}}$.", r["answer"], None) for r in rows]


def clip(s, n: int) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def print_table(rows: list, results: list) -> None:
    cols = [("#", 2), ("sample", 30), ("gold", 16), ("scheme", 15), ("verdict", 9), ("answer", 18), ("reward", 6),
            ("reason", 28)]
    line = "  ".join(f"{name:<{w}}" for name, w in cols)
    print(line)
    print("-" * len(line))
    for i, ((what, _c, gold, scheme), r) in enumerate(zip(rows, results), 1):
        vals = [str(i), clip(what, 30), clip(json.dumps(gold) if not isinstance(gold, str) else gold, 16),
                scheme or "simplerl", r.verdict, clip(r.answer if r.answer is not None else "-", 18),
                f"{r.reward:+.2f}", clip(r.reason, 28)]
        print("  ".join(f"{v:<{w}}" for v, (_n, w) in zip(vals, cols)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=2.0)
    args = ap.parse_args(argv)

    rows = SAMPLES + data_samples()
    print(f"starting the reward service ({args.workers} grading workers, {args.timeout:g} s per-item limit)...")
    t0 = time.perf_counter()
    with start_service(workers=args.workers, timeout=args.timeout, args=["--log-level", "warning"]) as svc:
        print(f"service up at {svc.url} in {time.perf_counter() - t0:.1f} s; scoring {len(rows)} completions over HTTP")
        with svc.client() as client:
            t1 = time.perf_counter()
            results = client.score([c for _w, c, _g, _s in rows], [g for _w, _c, g, _s in rows],
                                   schemes=[s for *_x, s in rows])
            dt = time.perf_counter() - t1
            print()
            print_table(rows, results)
            print(f"\nscored {len(rows)} items in {dt * 1000:.0f} ms. Schemes: "
                  + ", ".join(s["name"] for s in client.schemes()["schemes"]) + " (add '+format' for the format bonus)")
        print("stopping the service")
    return 0


if __name__ == "__main__":
    sys.exit(main())
