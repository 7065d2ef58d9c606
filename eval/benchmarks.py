"""Benchmark loaders: the seeds' math benchmarks as lists of :class:`Problem`.

Each benchmark reads a local JSONL file (``<data_dir>/<file>``) or, with ``source="hub"``, the usual
Hugging Face hub dataset. The data directory is, in order: the ``data_dir`` argument, the
``MATHRL_DATA_DIR`` environment variable, ``<repo>/../shared/data``.

Gold handling (the gold handed to the grader):

=================  ==============================================================================
gsm8k              the number after ``#### `` in the rationale, thousands commas removed ("2,125" -> "2125")
math500            ``answer`` as is (LaTeX string)
aime24             ``answer`` is a zero-padded string ("025"): canonical integer string "25"
aime25             ``answer`` is an int: its decimal string
amc23              ``answer`` is a float (27.0): "27" when integral, else the shortest float repr
minerva_math       no answer field: the last ``\\boxed{...}`` of ``solution`` (the seeds' convention)
minerva_math_rllm  the same problems with DeepScaleR/rllm's list of accepted answers (any may match)
olympiadbench      ``final_answer`` is a list of one string, usually ``$...$``-wrapped: the ``$`` are
                   removed; multi-answer rows keep their comma-separated set ("$69$,$84$" -> "69,84")
=================  ==============================================================================

A path to any JSONL/JSON/Parquet file can also be used as a benchmark name (e.g. a held-out split); its rows are read with the same field
fallbacks (question: problem/question; gold: answer/final_answer/gold, or the boxed answer of solution).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from mathrl_core import data_files
from mathrl_core.data_files import read_jsonl, read_rows
from mathrl_core.records import (Gold, accepted_list_gold, first_field, generic_gold, gsm8k_gold, last_boxed,
                                 number_gold, olympiad_gold, question_of)


class UnknownBenchmarkError(ValueError):
    """Raised for a benchmark name that is neither registered nor a JSONL path."""


@dataclass
class Problem:
    """One benchmark item: what the model is asked and what the grader compares against."""

    benchmark: str
    id: str
    question: str
    gold: Gold
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Registry (the gold helpers live in mathrl_core.records, shared with training).
# ---------------------------------------------------------------------------------------------

def _minerva_boxed_gold(row: dict) -> str:
    sol = first_field(row, ("solution", "Solution"))
    g = last_boxed(sol) if isinstance(sol, str) else None
    if g is None:  # hub copies (math-ai/minervamath) carry an explicit answer field
        g = first_field(row, ("answer",))
        if isinstance(g, list):
            g = g[0] if g else None
    if g is None:
        raise ValueError("minerva_math row without a boxed answer in its solution")
    return str(g).strip()


def _gsm8k_row_gold(row: dict) -> str:
    return gsm8k_gold(str(row["answer"]))


def _number_row_gold(row: dict) -> str:
    return number_gold(row["answer"])


def _olympiad_row_gold(row: dict) -> list:
    return olympiad_gold(first_field(row, ("final_answer", "answer")))


def _rllm_row_gold(row: dict) -> list:
    return accepted_list_gold(row["answer"])


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives and how to turn its rows into problems."""

    name: str
    file: str                        # local file name under the data directory
    id_keys: tuple                   # first present field is the problem id (else the row index)
    gold: Callable[[dict], Gold]
    hub_id: str = ""
    hub_config: Optional[str] = None
    hub_split: str = "test"
    meta_keys: tuple = ()
    description: str = ""


BENCHMARKS: dict[str, BenchmarkSpec] = {s.name: s for s in [
    BenchmarkSpec("gsm8k", "gsm8k_test.jsonl", ("idx",), _gsm8k_row_gold,
                  "openai/gsm8k", "main", "test", (), "GSM8K test, 1319 grade-school word problems"),
    BenchmarkSpec("math500", "math500.jsonl", ("unique_id",), generic_gold,
                  "HuggingFaceH4/MATH-500", None, "test", ("subject", "level"), "MATH500 (Lightman et al.)"),
    BenchmarkSpec("aime24", "aime24.jsonl", ("id",), _number_row_gold,
                  "HuggingFaceH4/aime_2024", None, "train", (), "AIME 2024 I+II, 30 problems"),
    BenchmarkSpec("aime25", "aime25.jsonl", ("id",), _number_row_gold,
                  "yentinglin/aime_2025", None, "train", (), "AIME 2025 I+II, 30 problems"),
    BenchmarkSpec("amc23", "amc23.jsonl", ("id",), _number_row_gold,
                  "zwhe99/amc23", None, "test", (), "AMC 2023, 40 problems"),
    BenchmarkSpec("minerva_math", "minerva_math.jsonl", ("idx",), _minerva_boxed_gold,
                  "math-ai/minervamath", None, "test", ("type",), "Minerva math (OCW), 272 problems, boxed gold"),
    BenchmarkSpec("minerva_math_rllm", "minerva_math_rllm.jsonl", ("idx",), _rllm_row_gold,
                  "", None, "test", ("type",),  # only in the rllm GitHub repo (rllm/data/test/math/minerva.json)
                  "Minerva math with rllm's lists of accepted answers"),
    BenchmarkSpec("olympiadbench", "olympiadbench.jsonl", ("id",), _olympiad_row_gold,
                  "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train",
                  ("subfield", "answer_type", "unit", "is_multiple_answer"),
                  "OlympiadBench open-ended English math (675)"),
]}

# The seeds' default set, in the order of their tables.
DEFAULT_BENCHMARKS = ("aime24", "aime25", "amc23", "math500", "gsm8k", "minerva_math", "olympiadbench")


def parse_benchmarks(spec: Union[str, Iterable[str]]) -> list[str]:
    """"math500,aime24" (or a list) -> ["math500", "aime24"]; "all" -> the default set.

    Raises :class:`UnknownBenchmarkError` for a name that is neither registered nor an existing .jsonl path.
    """
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if names == ["all"]:
        return list(DEFAULT_BENCHMARKS)
    if not names:
        raise UnknownBenchmarkError("no benchmark given; known: " + ", ".join(BENCHMARKS))
    for n in names:
        if n not in BENCHMARKS and not (_is_data_file_name(n) and Path(n).is_file()):
            hint = f" (file not found: {n})" if _is_data_file_name(n) else ""
            raise UnknownBenchmarkError(
                f"unknown benchmark {n!r}{hint}; known: {', '.join(BENCHMARKS)} (or a path to a "
                f".jsonl/.json/.parquet file)")
    return names


def _is_data_file_name(name: str) -> bool:
    return name.endswith((".jsonl", ".json", ".parquet"))


def rows_to_problems(name: str, rows: list[dict], spec: Optional[BenchmarkSpec] = None) -> list[Problem]:
    """Turn raw rows into problems using ``spec`` (or the generic field fallbacks)."""
    problems, seen = [], set()
    for i, row in enumerate(rows):
        try:
            gold = spec.gold(row) if spec else generic_gold(row)
            pid = first_field(row, spec.id_keys if spec else ("id", "idx", "unique_id", "prompt_id"))
            pid = str(i) if pid is None else str(pid)
            if pid in seen:  # ids must be unique within a benchmark: fall back to the row index
                pid = f"{pid}#{i}"
            seen.add(pid)
            meta = {k: row[k] for k in (spec.meta_keys if spec else ()) if k in row}
            problems.append(Problem(name, pid, question_of(row), gold, meta))
        except (KeyError, ValueError) as e:
            raise ValueError(f"{name}: row {i}: {e}") from e
    return problems


def load_benchmark(name: str, *, data_dir: Union[str, Path, None] = None, source: str = "local",
                   limit: Optional[int] = None) -> list[Problem]:
    """Load one benchmark as a list of :class:`Problem` (first ``limit`` items when given).

    ``source="local"`` reads ``<data_dir>/<file>``; ``"hub"`` calls ``datasets.load_dataset`` on the
    benchmark's hub id (needs network access); ``"auto"`` tries local first, then the hub.
    A path to a ``.jsonl`` / ``.json`` / ``.parquet`` file may be given instead of a registered name.
    """
    if name not in BENCHMARKS:
        if _is_data_file_name(name) and Path(name).is_file():
            problems = rows_to_problems(Path(name).stem, read_rows(name))
            return problems[:limit] if limit else problems
        parse_benchmarks([name])  # raises the clear error
    spec = BENCHMARKS[name]
    path = data_files.data_dir(data_dir) / spec.file
    if source == "hub" or (source == "auto" and not path.is_file()):
        rows = _load_hub_rows(spec)
    elif source in ("local", "auto"):
        if not path.is_file():
            raise FileNotFoundError(
                f"benchmark {name!r}: data file not found: {path} (set MATHRL_DATA_DIR or --data-dir to the "
                f"folder holding {spec.file}, or use source='hub' for {spec.hub_id})")
        rows = read_jsonl(path)
    else:
        raise ValueError(f"unknown source {source!r}; use 'local', 'hub' or 'auto'")
    problems = rows_to_problems(name, rows, spec)
    return problems[:limit] if limit else problems


def _load_hub_rows(spec: BenchmarkSpec) -> list[dict]:
    """Rows of the benchmark's hub dataset (``datasets.load_dataset``; needs the hub to be reachable)."""
    if not spec.hub_id:
        raise ValueError(f"benchmark {spec.name!r} has no hub copy; use the local file {spec.file}")
    from datasets import load_dataset  # heavy import, only when asked for

    args = (spec.hub_id, spec.hub_config) if spec.hub_config else (spec.hub_id,)
    try:
        ds = load_dataset(*args, split=spec.hub_split)
    except Exception as e:  # noqa: BLE001 - network/hub errors come in many types; keep the cause
        raise OSError(f"benchmark {spec.name!r}: could not load {'/'.join(a for a in args)} "
                      f"(split {spec.hub_split}) from the hub: {type(e).__name__}: {e}") from e
    return [dict(r) for r in ds]


def load_benchmarks(names: Union[str, Iterable[str]], **kw) -> dict[str, list[Problem]]:
    """Load several benchmarks (``"math500,aime24"`` or a list) into ``{name: problems}``."""
    return {n: load_benchmark(n, **kw) for n in parse_benchmarks(names)}
