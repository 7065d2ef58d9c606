"""Run outputs and tables.

A run directory holds::

    samples.jsonl   one line per sample: benchmark, id, sample, gold, answer, verdict, reason, cluster, len, ...
    summary.json    config + per-benchmark metrics + their average (fractions in [0, 1]; lengths as counted)
    table.md        the seeds' layout: one table per metric, rows = runs, columns = benchmarks + Avg.

``compare`` reads several run directories (or summary.json files) and puts them side by side.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from eval.benchmarks import DEFAULT_BENCHMARKS

# Column titles as the seeds print them.
TITLES = {"aime24": "AIME24", "aime25": "AIME25", "amc23": "AMC23", "math500": "MATH500", "gsm8k": "GSM8K",
          "minerva_math": "Minerva", "minerva_math_rllm": "Minerva (rllm)", "olympiadbench": "OlympiadBench"}
PERCENT_PREFIXES = ("pass@", "maj@", "avg_pass_rate", "no_answer_rate")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_run(out_dir: Union[str, Path], records: Sequence[dict], summary: dict,
              name: Optional[str] = None) -> dict:
    """Write samples.jsonl, summary.json and table.md into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(summary)
    summary.setdefault("name", name or out.name)
    paths = {"samples": out / "samples.jsonl", "summary": out / "summary.json", "table": out / "table.md"}
    _atomic_write(paths["samples"], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    _atomic_write(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(paths["table"], overview_table(summary) + "\n" + markdown_tables([(summary["name"], summary)]))
    return {k: str(v) for k, v in paths.items()}


def load_summary(path: Union[str, Path]) -> dict:
    """A run's summary from its directory or its summary.json; a clear error when it is missing."""
    p = Path(path)
    if p.is_dir():
        p = p / "summary.json"
    if not p.is_file():
        raise FileNotFoundError(f"no eval summary at {p} (give a run directory written by rl-eval, or its summary.json)")
    s = json.loads(p.read_text(encoding="utf-8"))
    if "benchmarks" not in s:
        raise ValueError(f"{p} is not an rl-eval summary (no 'benchmarks')")
    s.setdefault("name", p.parent.name)
    return s


def metric_names(summaries: Iterable[dict]) -> list[str]:
    """Metrics present in the summaries, in table order: pass@k, maj@k, avg_pass_rate, no_answer_rate, avg_len."""
    ks: set = set()
    for s in summaries:
        ks.update(s.get("ks", []))
    ordered = [f"pass@{k}" for k in sorted(ks)] + [f"maj@{k}" for k in sorted(ks) if k > 1]
    return ordered + ["avg_pass_rate", "no_answer_rate", "avg_len"]


def _benchmark_order(summaries: Sequence[dict]) -> list[str]:
    names: list = []
    for s in summaries:
        names += [b for b in s["benchmarks"] if b not in names]
    known = [b for b in DEFAULT_BENCHMARKS if b in names] + [b for b in TITLES if b in names and b not in DEFAULT_BENCHMARKS]
    return known + [b for b in names if b not in known]


def format_value(metric: str, v) -> str:
    """Percent with one decimal for rates (0.4125 -> "41.2"), whole numbers for lengths, "–" when missing."""
    if v is None:
        return "–"
    if metric.startswith(PERCENT_PREFIXES):
        return f"{100 * v:.1f}"
    return f"{v:.0f}"


def overview_table(summary: dict) -> str:
    """One run at a glance: rows = benchmarks (+ Avg.), columns = problems, samples and every metric."""
    metrics = metric_names([summary])
    head = ["Benchmark", "problems", "samples"] + [m.replace("_", " ") for m in metrics]
    lines = [f"## {summary.get('name', 'run')}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [(TITLES.get(b, b), summary["benchmarks"][b]) for b in _benchmark_order([summary])]
    rows.append(("Avg.", summary.get("average", {})))
    for title, m in rows:
        spp = m.get("samples_per_problem")
        n = "" if spp is None else (str(spp[0]) if spp[0] == spp[1] else f"{spp[0]}-{spp[1]}")
        cells = [title, str(m.get("n_problems", "")), n] + [format_value(k, m.get(k)) for k in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    unit = summary.get("len_unit", "tokens")
    return "\n".join(lines) + f"\n\nRates in %, avg len in {unit}; samples = samples per problem.\n"


def markdown_table(runs: Sequence[tuple], metric: str) -> str:
    """One metric: rows = runs ``[(name, summary), ...]``, columns = benchmarks (the seeds' order) + Avg."""
    benches = _benchmark_order([s for _, s in runs])
    head = ["Model"] + [TITLES.get(b, b) for b in benches] + ["Avg."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in runs:
        cells = [format_value(metric, s["benchmarks"].get(b, {}).get(metric)) for b in benches]
        cells.append(format_value(metric, s.get("average", {}).get(metric)))
        lines.append("| " + " | ".join([str(name)] + cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_tables(runs: Sequence[tuple], metrics: Optional[Sequence[str]] = None) -> str:
    """A heading and a table per metric (rates in %, lengths in the runs' unit)."""
    metrics = list(metrics) if metrics else metric_names([s for _, s in runs])
    units = {s.get("len_unit", "tokens") for _, s in runs}
    parts = []
    for m in metrics:
        if not any(s["benchmarks"].get(b, {}).get(m) is not None for _, s in runs for b in s["benchmarks"]):
            continue
        title = {"avg_pass_rate": "average pass rate (%)", "no_answer_rate": "no-answer rate (%)",
                 "avg_len": f"average CoT length ({'/'.join(sorted(units))})"}.get(m, f"{m} (%)")
        parts.append(f"### {title}\n\n{markdown_table(runs, m)}")
    return "\n".join(parts)


def compare(paths: Sequence[Union[str, Path]], metrics: Optional[Sequence[str]] = None) -> str:
    """Side-by-side markdown tables of several runs (directories or summary.json files)."""
    runs = []
    for p in paths:
        s = load_summary(p)
        runs.append((s.get("name") or Path(p).name, s))
    return markdown_tables(runs, metrics)


def flat_metrics(summary: dict, prefix: str = "eval") -> dict:
    """``{"eval/math500/pass@1": 0.41, ..., "eval/avg/pass@1": ...}`` for a trainer's logger."""
    out = {}
    for b, m in summary["benchmarks"].items():
        for k, v in m.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("n_problems", "n_samples"):
                out[f"{prefix}/{b}/{k}"] = float(v)
    for k, v in summary.get("average", {}).items():
        if isinstance(v, (int, float)) and k != "benchmarks":
            out[f"{prefix}/avg/{k}"] = float(v)
    return out
