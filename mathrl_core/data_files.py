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


def read_utf8(path: Union[str, Path]) -> str:
    """The file's text. Bytes that are not UTF-8 raise ``ValueError`` naming the file, the line and column
    of the first bad byte, and the byte itself (a Latin-1 or UTF-16 export is the usual cause)."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(f"{path}:{line}:{column}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}: "
                         f"{e.reason}); convert the file to UTF-8") from None


def numbered_lines(path: Union[str, Path]) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file, split on newlines only (a JSON string may hold U+2028)."""
    yield from enumerate(read_utf8(path).split("\n"), 1)


def iter_jsonl(path: Union[str, Path], text: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed row)`` of a JSONL file (or of its already-read ``text``), blank lines skipped; a
    malformed row raises ``ValueError`` naming the file and line."""
    lines = enumerate(text.split("\n"), 1) if text is not None else numbered_lines(path)
    for lineno, line in lines:
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
            data = json.loads(read_utf8(path))
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
