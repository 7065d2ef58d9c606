"""Reading record files: the data directory, and one reader per file type (JSONL, JSON, Parquet).

Every reader of the project (training prompts, SFT data, benchmarks) goes through :func:`read_rows`, so a
malformed row is reported the same way everywhere: the file and line (JSONL) or record that is wrong.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator, Union

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(explicit: Union[str, Path, None] = None) -> Path:
    """The data directory: ``explicit``, else ``$MATHRL_DATA_DIR``, else ``<repo>/../shared/data``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MATHRL_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def iter_jsonl(path: Union[str, Path]) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed row)`` of a JSONL file, blank lines skipped; a malformed row raises
    ``ValueError`` naming the file and line."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None


def read_jsonl(path: Union[str, Path]) -> list:
    """Rows of a JSONL file (:func:`iter_jsonl`)."""
    return [row for _, row in iter_jsonl(path)]


def read_rows(path: Union[str, Path], split: str = "train") -> list[dict]:
    """Records of a ``.jsonl``, ``.json`` or ``.parquet`` file, each a dict.

    A ``.json`` file holds an array of records, or an object with the array under ``split``, ``data``,
    ``train`` or ``records``; JSON lines with a ``.json`` name are read as JSONL.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = read_jsonl(path)
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            rows = read_jsonl(path)  # JSON lines with a .json name
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
        import pyarrow.parquet as pq  # heavy, only for parquet files

        rows = pq.read_table(path).to_pylist()
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {FILE_SUFFIXES}")
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise ValueError(f"{path}: record {bad} is a {type(rows[bad]).__name__}, not an object")
    return rows
