"""95 % confidence intervals for an eval run and for the change between two runs on the same problems.

``rl-eval diff BEFORE AFTER`` (e.g. a base model and its RL checkpoint, greedy, the same problems): per run the
accuracy and no-answer rate with Wilson score intervals and the mean response length with a normal interval;
for the change, *paired* intervals (each problem is its own control: the standard error of the per-problem
differences, which is much smaller than the two runs' intervals combined when the runs agree on most problems)
and McNemar's exact test on the problems whose outcome flipped.

Inputs are ``samples.jsonl`` files written by ``rl-eval run`` (one line per problem and sample). With several
samples per problem, a problem's accuracy is the mean over its samples and the intervals are over problems.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def fmt(self, scale: float = 100.0, digits: int = 1, unit: str = " %") -> str:
        f = f"{{:.{digits}f}}"
        return (f"{f.format(self.value * scale)}{unit} [{f.format(self.low * scale)}, "
                f"{f.format(self.high * scale)}]")


def wilson(successes: float, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of a proportion (well-behaved near 0 and 1, unlike the normal interval)."""
    if n <= 0:
        raise ValueError("wilson: n must be > 0")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(xs: Sequence[float], z: float = Z95) -> Interval:
    """Mean with a normal-approximation interval (sample standard deviation / sqrt(n))."""
    n = len(xs)
    if n < 2:
        raise ValueError("mean_interval: need at least 2 values")
    m = sum(xs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    half = z * sd / math.sqrt(n)
    return Interval(m, m - half, m + half)


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: ``b`` problems went right -> wrong, ``c`` wrong -> right."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def per_problem(samples_file: Union[str, Path]) -> dict[tuple, dict]:
    """``{(benchmark, id): {"correct": mean, "no_answer": mean, "len": mean}}`` from an rl-eval samples.jsonl."""
    acc: dict[tuple, list] = {}
    with open(samples_file, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            acc.setdefault((r["benchmark"], str(r["id"])), []).append(r)
    out = {}
    for key, rows in acc.items():
        k = len(rows)
        out[key] = {"correct": sum(r["verdict"] == "correct" for r in rows) / k,
                    "no_answer": sum(r["verdict"] == "no_answer" for r in rows) / k,
                    "len": sum(float(r["len"]) for r in rows) / k}
    if not out:
        raise ValueError(f"{samples_file}: no samples")
    return out


def run_intervals(problems: dict[tuple, dict]) -> dict[str, Interval]:
    n = len(problems)
    return {"accuracy": wilson(sum(p["correct"] for p in problems.values()), n),
            "no_answer_rate": wilson(sum(p["no_answer"] for p in problems.values()), n),
            "mean_length": mean_interval([p["len"] for p in problems.values()])}


def paired_change(before: dict[tuple, dict], after: dict[tuple, dict]) -> dict:
    """Intervals of after - before over the problems both runs have (an error if they share none)."""
    keys = sorted(set(before) & set(after))
    if len(keys) < 2:
        raise ValueError(f"the runs share {len(keys)} problems; a paired comparison needs the same problems")
    out: dict = {"problems": len(keys), "only_before": len(set(before) - set(after)),
                 "only_after": len(set(after) - set(before))}
    for metric, field in (("accuracy", "correct"), ("no_answer_rate", "no_answer"), ("mean_length", "len")):
        out[metric] = mean_interval([after[k][field] - before[k][field] for k in keys])
    lost = sum(before[k]["correct"] == 1 and after[k]["correct"] == 0 for k in keys)
    gained = sum(before[k]["correct"] == 0 and after[k]["correct"] == 1 for k in keys)
    out["flips"] = {"right_to_wrong": lost, "wrong_to_right": gained, "mcnemar_p": mcnemar_exact_p(lost, gained)}
    return out


def diff_report(before_dir: Union[str, Path], after_dir: Union[str, Path], names=("before", "after")) -> dict:
    """Both runs' intervals and the paired change, from two rl-eval run directories (or samples.jsonl files)."""
    def load(p):
        p = Path(p)
        return per_problem(p / "samples.jsonl" if p.is_dir() else p)

    b, a = load(before_dir), load(after_dir)
    return {"runs": {names[0]: run_intervals(b), names[1]: run_intervals(a)}, "change": paired_change(b, a)}


def markdown(report: dict) -> str:
    names = list(report["runs"])
    ch = report["change"]
    rows = [("accuracy", 100.0, 1, " %"), ("no_answer_rate", 100.0, 1, " %"), ("mean_length", 1.0, 0, " tok")]
    lines = [f"| metric (95 % CI) | {names[0]} | {names[1]} | change (paired) |", "|---|---|---|---|"]
    for metric, scale, digits, unit in rows:
        cells = [report["runs"][n][metric].fmt(scale, digits, unit) for n in names]
        lines.append(f"| {metric.replace('_', ' ')} | {cells[0]} | {cells[1]} | "
                     f"{ch[metric].fmt(scale, digits, unit)} |")
    f = ch["flips"]
    lines.append("")
    lines.append(f"{ch['problems']} problems; right->wrong {f['right_to_wrong']}, wrong->right {f['wrong_to_right']} "
                 f"(McNemar exact p = {f['mcnemar_p']:.3g})")
    return "\n".join(lines)


def to_json(report: dict) -> dict:
    def conv(x):
        if isinstance(x, Interval):
            return {"value": x.value, "ci95": [x.low, x.high]}
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x

    return conv(report)
