"""The local cache of downloaded and converted models (``rl-prepare-model``, GGUF conversion).

Where: ``$MATHRL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/mathrl``, else ``~/.cache/mathrl``. Several processes
(parallel test runs, every Ray rank, other users of the same home) may fill it at once, so every entry is
written under a temporary name in the same folder and renamed into place when complete (a reader never sees
half a file or half a directory), and the slow fills (a conversion) hold a per-entry lock so that the work is
done once while others wait for it.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional


def cache_root(cache_dir: Optional[str | Path] = None) -> Path:
    """The cache folder (created): ``cache_dir`` if given, else ``$MATHRL_CACHE_DIR``, ``$XDG_CACHE_HOME/mathrl``
    or ``~/.cache/mathrl``."""
    if cache_dir is None:
        cache_dir = os.environ.get("MATHRL_CACHE_DIR")
    if cache_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache_dir = os.path.join(base, "mathrl")
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created) for the ``with`` block; other processes wait."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def temp_dir_beside(final: str | Path) -> Path:
    """A fresh temporary directory in ``final``'s parent (same file system, so a rename publishes it)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(d, 0o777 & ~umask)  # mkdtemp makes it 0700; once published it is an ordinary shared folder
    return d


def publish(tmp: str | Path, final: str | Path, replace: bool = False) -> Path:
    """Rename the finished ``tmp`` (file or directory) to ``final``.

    If ``final`` already exists: with ``replace`` the old one is moved aside, the new one renamed in, then the old
    one deleted; without it the existing entry wins (another process published the same content first) and
    ``tmp`` is removed.
    """
    tmp, final = Path(tmp), Path(final)
    if final.exists() and replace:
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.rename(final, old / final.name)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return final
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        remove(tmp)
    return final


def remove(path: str | Path) -> None:
    """Delete a file or a directory tree if it exists."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()
