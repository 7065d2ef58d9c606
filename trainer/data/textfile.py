"""Reading text files (configs, data, benchmarks) as UTF-8 with errors that name the file, line and column."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union


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
