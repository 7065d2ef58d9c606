"""Prompt records from local files (JSONL / JSON / parquet) or a hub id, and a resumable batch iterator.

Field mapping (first match wins, unless ``question_key`` / ``answer_key`` are given):

- question: ``question``, ``problem``, ``prompt``, ``query``
- answer:   ``answer``, ``final_answer``, ``gt_answer``, ``ground_truth``, ``target``, then ``solution`` when
  it contains a ``\\boxed{}`` (Minerva).

The gold answer is kept as the source gives it, because the reward service understands every form: a string
(including a GSM8K rationale ending in ``#### N`` or a solution with ``\\boxed{}``), an int (AIME 2025), a
float (AMC 2023: ``27.0``) or a list of accepted answers (OlympiadBench, Minerva-rLLM).

Sources: a file path, a directory holding ``{split}.jsonl|json|parquet``, a bare name of a file in the data
directory (``math500`` → ``$MATHRL_DATA_DIR/math500.jsonl``, default ``<repo>/../shared/data``), or a hub id
(``datasets.load_dataset(source, config_name, split=split)``).
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from trainer.data.textfile import numbered_lines, read_utf8

logger = logging.getLogger(__name__)

QUESTION_KEYS = ("question", "problem", "prompt", "query")
ANSWER_KEYS = ("answer", "final_answer", "gt_answer", "ground_truth", "target")
SOLUTION_KEY = "solution"
FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class PromptRecord:
    """One training/eval item. ``answer`` is the gold as the source gives it (str, int, float or list)."""

    question: str
    answer: Any
    index: int                                   # position in the source
    extra: dict = field(default_factory=dict)    # the other fields (id, level, subject, solution, ...)

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.answer, "index": self.index, **self.extra}


def data_dir() -> Path:
    """``$MATHRL_DATA_DIR`` or ``<repo>/../shared/data``."""
    env = os.environ.get("MATHRL_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None
    return rows


def _read_file(path: Path, split: str) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _read_jsonl(path)
    elif suffix == ".json":
        text = read_utf8(path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            rows = _read_jsonl(path)  # JSON lines with a .json name
        else:
            if isinstance(data, dict):
                key = next((k for k in (split, "data", "train", "records") if isinstance(data.get(k), list)), None)
                if key is None:
                    raise ValueError(f"{path}: a JSON object needs a list under '{split}' or 'data'; "
                                     f"found keys {sorted(data)[:10]}")
                data = data[key]
            if not isinstance(data, list):
                raise ValueError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
            rows = data
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {FILE_SUFFIXES}")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise ValueError(f"{path}: record {bad} is a {type(rows[bad]).__name__}, not an object")
    return rows


def _looks_like_path(source: str) -> bool:
    return (source.lower().endswith(FILE_SUFFIXES) or source.startswith(("/", "./", "../", "~"))
            or os.sep in source and not re.fullmatch(r"[\w.-]+/[\w.-]+", source))


def _load_rows(source: str, split: str, config_name: str | None) -> tuple[list[dict], str]:
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        for suffix in FILE_SUFFIXES:
            if (path / f"{split}{suffix}").is_file():
                return _read_file(path / f"{split}{suffix}", split), str(path / f"{split}{suffix}")
        raise FileNotFoundError(f"{path} is a directory without {split}.jsonl, {split}.json or {split}.parquet "
                                f"(it holds: {sorted(p.name for p in path.iterdir())[:10]})")
    if path.is_file():
        return _read_file(path, split), str(path)
    if _looks_like_path(source):
        raise FileNotFoundError(f"dataset file not found: {source}")
    local = data_dir() / f"{source}.jsonl"
    if "/" not in source and local.is_file():
        return _read_file(local, split), str(local)
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
    rows, where = _load_rows(str(source), split, config_name)
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
            sol = rows[0].get(SOLUTION_KEY)
            if not (isinstance(sol, str) and "\\boxed" in sol):
                raise
            answer_key = SOLUTION_KEY  # e.g. Minerva: the gold is the last \boxed{} of the solution
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
        out.append(PromptRecord(q, a, i, extra))
    if skipped:
        logger.warning("%s: skipped %d record(s) with an empty or malformed question/answer: indices %s%s",
                       where, len(skipped), skipped[:10], " ..." if len(skipped) > 10 else "")
    if not out:
        raise ValueError(f"{where}: none of the {len(rows)} records has a usable question and answer "
                         f"(question_key={question_key!r}, answer_key={answer_key!r})")
    return out


class PromptDataset:
    """Deterministic, resumable batches of records.

    Epoch ``e`` visits the records in ``permutation(seed, e)`` order (or file order with ``shuffle=False``);
    batches never straddle epochs (with ``drop_last`` the incomplete tail of an epoch is skipped). The
    iterator is endless: the training loop decides how many steps to take. ``state_dict()`` holds the epoch
    and the position within it, so a resumed run gets exactly the batches an uninterrupted one would.
    """

    def __init__(self, records: Sequence[PromptRecord], batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if not records:
            raise ValueError("PromptDataset needs at least one record")
        if drop_last and batch_size > len(records):
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({len(records)} records)")
        self.records = list(records)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0
        self._order_epoch, self._order = -1, None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def batches_per_epoch(self) -> int:
        n, b = len(self.records), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """Record indices in the order epoch ``epoch`` visits them."""
        if self._order_epoch != epoch:
            n = len(self.records)
            self._order = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle
                           else np.arange(n))
            self._order_epoch = epoch
        return self._order

    def next_batch(self) -> list[PromptRecord]:
        n = len(self.records)
        if self.position >= n or (self.drop_last and self.position + self.batch_size > n):
            self.epoch += 1
            self.position = 0
        idx = self.order(self.epoch)[self.position:self.position + self.batch_size]
        self.position += len(idx)
        return [self.records[i] for i in idx]

    def __iter__(self) -> Iterator[list[PromptRecord]]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "num_records": len(self.records), "batch_size": self.batch_size, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict) -> None:
        for key in ("num_records", "seed", "shuffle"):
            mine = len(self.records) if key == "num_records" else getattr(self, key)
            if key in state and state[key] != mine:
                raise ValueError(f"cannot resume the data position: checkpoint has {key}={state[key]}, "
                                 f"this dataset has {mine}")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
