"""Prompt/answer records and gold handling, shared by training (``trainer``) and evaluation (``eval``).

Field mapping (first match wins, unless ``question_key`` / ``answer_key`` are given):

- question: ``question``, ``problem``, ``Question``, ``Problem``, ``prompt``, ``query`` (an OlympiadBench-style
  ``context`` field is put before the question)
- answer:   ``answer``, ``final_answer``, ``gold``, ``gt_answer``, ``ground_truth``, ``gt``, ``target``,
  ``Answer``, then ``solution`` when it contains a ``\\boxed{}`` (Minerva).

Training keeps the gold as the source gives it, because the reward service understands every form: a string
(including a GSM8K rationale ending in ``#### N`` or a solution with ``\\boxed{}``), an int (AIME 2025), a float
(AMC 2023: ``27.0``) or a list of accepted answers (OlympiadBench, Minerva-rLLM). Evaluation reports a
canonical gold per problem (``eval.benchmarks`` picks one of the gold helpers below per benchmark).

Sources of :func:`load_rows`: a file path, a directory holding ``{split}.jsonl|json|parquet``, a bare name of a
file in the data directory (``math500`` -> ``$MATHRL_DATA_DIR/math500.jsonl``, default
``<repo>/../shared/data``), or a hub id (``datasets.load_dataset(source, config_name, split=split)``).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from mathrl_core.data_files import FILE_SUFFIXES, data_dir, read_rows

logger = logging.getLogger(__name__)

QUESTION_KEYS = ("question", "problem", "Question", "Problem", "prompt", "query")
ANSWER_KEYS = ("answer", "final_answer", "gold", "gt_answer", "ground_truth", "gt", "target", "Answer")
SOLUTION_KEYS = ("solution", "Solution")

Gold = Union[str, list]


@dataclass
class PromptRecord:
    """One training/eval item. ``answer`` is the gold as the source gives it (str, int, float or list)."""

    question: str
    answer: Any
    index: int                                   # position in the source
    extra: dict = field(default_factory=dict)    # the other fields (id, level, subject, solution, ...)

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.answer, "index": self.index, **self.extra}


def _looks_like_path(source: str) -> bool:
    return (source.lower().endswith(FILE_SUFFIXES) or source.startswith(("/", "./", "../", "~"))
            or os.sep in source and not re.fullmatch(r"[\w.-]+/[\w.-]+", source))


def load_rows(source: str, split: str = "train", config_name: str | None = None) -> tuple[list[dict], str]:
    """The rows of ``source`` (see the module docstring) and where they were read from."""
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        for suffix in FILE_SUFFIXES:
            if (path / f"{split}{suffix}").is_file():
                return read_rows(path / f"{split}{suffix}", split), str(path / f"{split}{suffix}")
        raise FileNotFoundError(f"{path} is a directory without {split}.jsonl, {split}.json or {split}.parquet "
                                f"(it holds: {sorted(p.name for p in path.iterdir())[:10]})")
    if path.is_file():
        return read_rows(path, split), str(path)
    if _looks_like_path(source):
        raise FileNotFoundError(f"dataset file not found: {source}")
    local = data_dir() / f"{source}.jsonl"
    if "/" not in source and local.is_file():
        return read_rows(local, split), str(local)
    return _load_hub(source, split, config_name), source


def _load_hub(source: str, split: str, config_name: str | None) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(source, config_name, split=split)
    except Exception as e:  # no network, unknown id, unknown split/config
        raise FileNotFoundError(
            f"could not load {source!r} (split {split!r}) as a local file, a name in {data_dir()} or a hub "
            f"dataset: {type(e).__name__}: {e}") from e
    return [dict(r) for r in ds]


def _pick_key(rows: list[dict], candidates: Sequence[str], what: str, source: str) -> str:
    first = rows[0]
    for key in candidates:
        if key in first and first[key] not in (None, ""):
            return key
    raise KeyError(f"{source}: no {what} field found; tried {list(candidates)}, record 0 has "
                   f"{sorted(first)}; pass {what}_key=... to choose one")


def _check_answer(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
    return False


def load_records(source: str, split: str = "train", question_key: str | None = None,
                 answer_key: str | None = None, *, config_name: str | None = None, limit: int | None = None,
                 require_answer: bool = True, skip_invalid: bool = True) -> list[PromptRecord]:
    """Read question/answer records from ``source`` (see the module docstring for sources and field mapping).

    Raises ``FileNotFoundError`` for a missing file and ``KeyError`` naming the field when the question or
    answer field is absent. A record whose question is empty or whose answer is empty/malformed (MATH train
    has two empty ``\\boxed{}`` golds) is skipped with a warning naming the indices, or raises ``ValueError``
    naming the record when ``skip_invalid=False``. ``PromptRecord.index`` keeps the position in the source.
    """
    rows, where = load_rows(str(source), split, config_name)
    if not rows:
        raise ValueError(f"{where}: no records")
    if limit is not None:
        rows = rows[:limit]
    if question_key is None:
        question_key = _pick_key(rows, QUESTION_KEYS, "question", where)
    elif question_key not in rows[0]:
        raise KeyError(f"{where}: question_key {question_key!r} not in record 0 (fields: {sorted(rows[0])})")
    if answer_key is None and require_answer:
        try:
            answer_key = _pick_key(rows, ANSWER_KEYS, "answer", where)
        except KeyError:
            answer_key = next((k for k in SOLUTION_KEYS if isinstance(rows[0].get(k), str)
                               and "\\boxed" in rows[0][k]), None)
            if answer_key is None:  # e.g. Minerva: the gold is the last \boxed{} of the solution
                raise
    elif answer_key is not None and answer_key not in rows[0]:
        raise KeyError(f"{where}: answer_key {answer_key!r} not in record 0 (fields: {sorted(rows[0])})")
    out, skipped = [], []
    for i, row in enumerate(rows):
        q = row.get(question_key)
        a = row.get(answer_key) if answer_key else None
        problem = None
        if not isinstance(q, str) or not q.strip():
            problem = (f"question field {question_key!r} must be a non-empty string, got "
                       f"{type(q).__name__}: {str(q)[:80]!r}")
        elif require_answer and not _check_answer(a):
            problem = f"answer field {answer_key!r} is missing, empty or malformed: {str(a)[:80]!r}"
        if problem:
            if not skip_invalid:
                raise ValueError(f"{where}: record {i}: {problem}")
            skipped.append(i)
            continue
        if isinstance(a, tuple):
            a = list(a)
        extra = {k: v for k, v in row.items() if k not in (question_key, answer_key)}
        out.append(PromptRecord(question_of(row, question_key), a, i, extra))
    if skipped:
        logger.warning("%s: skipped %d record(s) with an empty or malformed question/answer: indices %s%s",
                       where, len(skipped), skipped[:10], " ..." if len(skipped) > 10 else "")
    if not out:
        raise ValueError(f"{where}: none of the {len(rows)} records has a usable question and answer "
                         f"(question_key={question_key!r}, answer_key={answer_key!r})")
    return out


# ------------------------------------------------------------------------------------- gold helpers
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


def first_field(row: dict, keys: Iterable[str]) -> Any:
    """The value of the first of ``keys`` that ``row`` has with a non-empty value (else None)."""
    for k in keys:
        if k in row and row[k] is not None and row[k] != "":
            return row[k]
    return None


def question_of(row: dict, key: Optional[str] = None) -> str:
    """The question of a row (``key`` or the first of :data:`QUESTION_KEYS`), after its ``context`` if any."""
    q = row.get(key) if key else first_field(row, QUESTION_KEYS)
    if q is None:
        raise ValueError(f"row has no problem/question field (fields: {sorted(row)})")
    ctx = row.get("context")
    return f"{ctx}\n\n{q}" if isinstance(ctx, str) and ctx.strip() else str(q)


def generic_gold(row: dict) -> Gold:
    """A row's gold for evaluation: the first of :data:`ANSWER_KEYS` (numbers in canonical form, lists of
    accepted answers de-duplicated), else the last ``\\boxed{}`` of its solution."""
    g = first_field(row, ANSWER_KEYS)
    if g is None:
        sol = first_field(row, SOLUTION_KEYS)
        g = last_boxed(sol) if isinstance(sol, str) else None
        if g is None:
            raise ValueError(f"row has no answer field and no boxed answer in a solution (fields: {sorted(row)})")
        return g
    if isinstance(g, list):
        return accepted_list_gold(g)
    if isinstance(g, (int, float)):
        return number_gold(g)
    return str(g).strip()
