"""The processes of a running reward service, read from /proc (Linux): its grading workers and its memory."""
from __future__ import annotations

from pathlib import Path

from benchmarks.bench_load import rss_mb  # noqa: F401  (re-exported: the server's resident memory in MB)


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def worker_pids(server_pid: int) -> list[int]:
    """Grading workers of the server: forked by its multiprocessing fork server (or spawned directly)."""
    pids = []
    for child in children(server_pid):
        cmd = cmdline(child)
        if b"forkserver" in cmd:
            pids += children(child)
        elif b"spawn_main" in cmd:
            pids.append(child)
    return pids
