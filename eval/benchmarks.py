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

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from trainer.data.textfile import numbered_lines, read_utf8

Gold = Union[str, list]

REPO_ROOT = Path(__file__).resolve().parent.parent


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
# Gold extraction helpers (pure).
# ---------------------------------------------------------------------------------------------

def last_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (braces matched), or of a
    trailing ``\\boxed N`` without braces; ``None`` when there is none or it is unclosed."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*(\{)?", text):
        start = m.end()
        if m.group(1) is None:  # "\boxed 2": up to the next whitespace or "$"
            tok = re.match(r"[^\s$]+", text[start:])
            if tok:
                best = tok.group(0)
            continue
        depth, i = 1, start
        while i < len(text) and depth:
            c = text[i]
            if c == "\\":
                i += 2
                continue
            depth += (c == "{") - (c == "}")
            i += 1
        if depth == 0:
            best = text[start:i - 1]
    return best.strip() if best is not None else None


def gsm8k_gold(rationale: str) -> str:
    """The final number of a GSM8K rationale: the text after the last ``####``, commas removed."""
    if "####" not in rationale:
        raise ValueError(f"GSM8K answer without '#### N': {rationale[-80:]!r}")
    return rationale.rsplit("####", 1)[1].strip().replace(",", "")


def number_gold(value: Any) -> str:
    """Canonical string of an integer-like or float gold: 27.0 -> "27", "025" -> "25", 0.5 -> "0.5"."""
    if isinstance(value, bool):
        raise ValueError(f"boolean gold {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    s = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return str(int(s))
    return s


def strip_dollars(s: str) -> str:
    """Remove unescaped ``$`` math delimiters: "$\\frac{1}{2}$" -> "\\frac{1}{2}"."""
    return re.sub(r"(?<!\\)\$", "", s).strip()


def olympiad_gold(final_answer: Any) -> list:
    """OlympiadBench ``final_answer`` (a list, usually of one ``$``-wrapped string) as a list of
    accepted answers without ``$``."""
    items = final_answer if isinstance(final_answer, list) else [final_answer]
    return [strip_dollars(str(a)) for a in items if str(a).strip()]


def accepted_list_gold(answers: Any) -> list:
    """A list of accepted answer strings (rllm's Minerva), whitespace stripped and de-duplicated."""
    items = answers if isinstance(answers, list) else [answers]
    out: list = []
    for a in items:
        s = str(a).strip()
        if s and s not in out:
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------------
# Registry.
# ---------------------------------------------------------------------------------------------

def _first(row: dict, keys: Iterable[str]) -> Any:
    for k in keys:
        if k in row and row[k] is not None and row[k] != "":
            return row[k]
    return None


def _question(row: dict) -> str:
    q = _first(row, ("problem", "question", "Problem", "Question", "prompt"))
    if q is None:
        raise ValueError(f"row has no problem/question field (fields: {sorted(row)})")
    ctx = row.get("context")
    return f"{ctx}\n\n{q}" if isinstance(ctx, str) and ctx.strip() else str(q)


def _generic_gold(row: dict) -> Gold:
    g = _first(row, ("gold", "answer", "final_answer", "Answer", "ground_truth", "gt"))
    if g is None:
        sol = _first(row, ("solution", "Solution"))
        g = last_boxed(sol) if isinstance(sol, str) else None
        if g is None:
            raise ValueError(f"row has no answer field and no boxed answer in a solution (fields: {sorted(row)})")
        return g
    if isinstance(g, list):
        return accepted_list_gold(g)
    if isinstance(g, (int, float)):
        return number_gold(g)
    return str(g).strip()


def _minerva_boxed_gold(row: dict) -> str:
    sol = _first(row, ("solution", "Solution"))
    g = last_boxed(sol) if isinstance(sol, str) else None
    if g is None:  # hub copies (math-ai/minervamath) carry an explicit answer field
        g = _first(row, ("answer",))
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
    return olympiad_gold(_first(row, ("final_answer", "answer")))


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
    BenchmarkSpec("math500", "math500.jsonl", ("unique_id",), _generic_gold,
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


def resolve_data_dir(explicit: Union[str, Path, None] = None) -> Path:
    """The data directory: ``explicit``, else ``$MATHRL_DATA_DIR``, else ``<repo>/../shared/data``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MATHRL_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


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


def read_rows(path: Union[str, Path]) -> list[dict]:
    """Rows of a .jsonl, .json (a list, or {"data": [...]}) or .parquet file."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    if path.suffix == ".json":
        data = json.loads(read_utf8(path))
        data = data.get("data", data) if isinstance(data, dict) else data
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        return data
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise ValueError(f"{path}: unsupported file type (use .jsonl, .json or .parquet)")


def read_jsonl(path: Union[str, Path]) -> list[dict]:
    """Rows of a JSONL file; a clear error names the file and line of a malformed row."""
    rows = []
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from e
    return rows


def rows_to_problems(name: str, rows: list[dict], spec: Optional[BenchmarkSpec] = None) -> list[Problem]:
    """Turn raw rows into problems using ``spec`` (or the generic field fallbacks)."""
    problems, seen = [], set()
    for i, row in enumerate(rows):
        try:
            gold = spec.gold(row) if spec else _generic_gold(row)
            pid = _first(row, spec.id_keys if spec else ("id", "idx", "unique_id", "prompt_id"))
            pid = str(i) if pid is None else str(pid)
            if pid in seen:  # ids must be unique within a benchmark: fall back to the row index
                pid = f"{pid}#{i}"
            seen.add(pid)
            meta = {k: row[k] for k in (spec.meta_keys if spec else ()) if k in row}
            problems.append(Problem(name, pid, _question(row), gold, meta))
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
    path = resolve_data_dir(data_dir) / spec.file
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
