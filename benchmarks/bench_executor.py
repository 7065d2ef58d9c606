"""Executor throughput: snippets/s of the sandbox (``sandbox.PythonExecutor``) on a realistic mix of tool calls,
against a fresh ``python -c`` process per snippet (the simplest executor that also starts every snippet afresh,
without any isolation) in the same run; and how long one RL step's batch of tool calls keeps the rollout waiting.

    python -m benchmarks.bench_executor [--workers 2] [--rounds 2] [--demo runs/tool_demo/summary.json]

The mix follows what ToRL-style models write (sympy, fractions, loops, numpy, errors, a rare runaway loop):

    35 % arithmetic and loops     25 % sympy (solve, factor, simplify, Rational)   10 % numpy
    10 % fractions / math         15 % exceptions (NameError, ZeroDivisionError, SyntaxError)
     4 % heavier loops (~0.1-0.3 s of CPU)                                          1 % infinite loop (timeout)

Both executors get ``--workers`` snippets at once; the ratio is robust to other load on the machine, the
absolute rates are not. ``--demo``: also report, from a ``trainer.tool_demo`` run, the seconds each GRPO step
of the tool arm waited on the executor beside the step's time (``tools/wait_s``, ``time/step``).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox import PythonExecutor, SandboxLimits

ARITH = ["print({a} * {b})", "print(sum(i * i for i in range({n})))", "x = {a}\ny = {b}\nprint(x ** 2 - y ** 2)",
         "total = 0\nfor k in range(1, {n}):\n    total += k % 7\nprint(total)", "print(divmod({a} * {b}, 97))"]
SYMPY = ["import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - {a}*x + {b}, x))",
         "import sympy as sp\nprint(sp.factorint({a} * {b}))",
         "import sympy as sp\nx = sp.symbols('x')\nprint(sp.simplify((x**2 - {b}) / (x - sp.sqrt({b}))))",
         "from sympy import Rational\nprint(Rational({a}, {b}) + Rational(1, 3))",
         "import sympy as sp\nn = sp.symbols('n', integer=True)\nprint(sp.summation(n**2, (n, 1, {a})))"]
NUMPY = ["import numpy as np\nprint(np.linalg.det(np.array([[{a}, 2], [3, {b}]])))",
         "import numpy as np\nprint(np.arange({n}).sum())"]
FRACTIONS = ["from fractions import Fraction\nprint(Fraction({a}, {b}) * 3)", "import math\nprint(math.comb({n} % 60, 7))"]
ERRORS = ["print(undefined_name + 1)", "print({a} / 0)", "print(({a} +)"]
HEAVY = ["s = 0\nfor i in range(2_000_000):\n    s += i % 3\nprint(s)"]
RUNAWAY = ["while True:\n    pass"]
MIX = [(ARITH, 35), (SYMPY, 25), (NUMPY, 10), (FRACTIONS, 10), (ERRORS, 15), (HEAVY, 4), (RUNAWAY, 1)]


def snippets(n: int, seed: int = 0, mix=MIX) -> list[str]:
    rng = random.Random(seed)
    kinds = [k for k, w in mix for _ in range(w)]
    out = []
    for _ in range(n):
        tpl = rng.choice(rng.choice(kinds))
        out.append(tpl.format(a=rng.randint(2, 999), b=rng.randint(2, 99), n=rng.randint(100, 20_000)))
    return out


def run_fresh_python(codes: list[str], workers: int, timeout: float) -> list[str]:
    """The peer: ``python -c CODE`` per snippet (a fresh interpreter, imports paid every time, no isolation)."""
    def one(code: str) -> str:
        try:
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
            return "ok" if r.returncode == 0 else "error"
        except subprocess.TimeoutExpired:
            return "timeout"

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, codes))


def measure(label: str, fn, codes: list[str]) -> dict:
    t0 = time.perf_counter()
    statuses = fn(codes)
    dt = time.perf_counter() - t0
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"  {label:<28} {len(codes) / dt:7.1f} snippets/s  ({len(codes)} in {dt:.1f} s; {counts})", flush=True)
    return {"snippets_per_s": len(codes) / dt, "seconds": dt, "statuses": counts}


def demo_wait(path: Path) -> dict:
    """Per GRPO step of the tool arm of a tool-demo run: seconds waiting on the executor and the step's seconds."""
    rows = json.loads(path.read_text())["rows"]
    waits, steps = [], []
    for r in rows:
        for m in r["tool"]["curve"]:
            if "tools/wait_s" in m:
                waits.append(m["tools/wait_s"])
                steps.append(m["time/step"])
    return {"steps": len(waits), "wait_s_median": statistics.median(waits), "step_s_median": statistics.median(steps),
            "wait_fraction": sum(waits) / sum(steps)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--snippets", type=int, default=400)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=2.0, help="wall seconds per snippet (the runaway loops)")
    p.add_argument("--step-calls", type=int, default=64, help="tool calls in one RL step (the demo: 8 x 8 samples)")
    p.add_argument("--demo", type=Path, default=None, help="a trainer.tool_demo summary.json")
    a = p.parse_args(argv)
    limits = SandboxLimits(timeout_s=a.timeout, memory_mb=1024)
    codes = snippets(a.snippets)
    report: dict = {"workers": a.workers, "snippets": a.snippets, "rounds": []}
    with PythonExecutor(limits, workers=a.workers) as ex:
        ex.run_many(["print(1)"] * (2 * a.workers))  # warm
        print(f"sandbox: {ex.isolation}, preloaded {ex.preloaded}")
        for r in range(a.rounds):
            print(f"round {r + 1}: realistic mix")
            ours = measure("sandbox (this project)", lambda c: [x.status for x in ex.run_many(c)], codes)
            peer = measure("fresh `python -c` each", lambda c: run_fresh_python(c, a.workers, a.timeout), codes)
            report["rounds"].append({"sandbox": ours, "fresh_python": peer,
                                     "ratio": ours["snippets_per_s"] / peer["snippets_per_s"]})
            print(f"  -> {report['rounds'][-1]['ratio']:.2f}x")
        step = [f"print({random.Random(i).randint(100, 999)} * {random.Random(-i).randint(11, 99)})"
                for i in range(a.step_calls)]
        waits = []
        for _ in range(3):
            t0 = time.perf_counter()
            ex.run_many(step)
            waits.append(time.perf_counter() - t0)
        report["step_batch"] = {"calls": a.step_calls, "seconds_median": statistics.median(waits)}
        print(f"one step's {a.step_calls} tool calls (the demo's): {statistics.median(waits):.2f} s (median of 3)")
    if a.demo:
        report["demo"] = demo_wait(a.demo)
        d = report["demo"]
        print(f"tool demo ({d['steps']} GRPO steps): waited on the executor {d['wait_s_median']:.2f} s per step "
              f"(median) of {d['step_s_median']:.2f} s; {100 * d['wait_fraction']:.1f} % of the step time")
    ratios = [r["ratio"] for r in report["rounds"]]
    print(f"\nsandbox vs fresh python: {', '.join(f'{x:.2f}x' for x in ratios)}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
