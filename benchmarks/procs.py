"""A running reward service's processes, read from /proc (Linux): its grading workers and its memory."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def children(pid: int) -> list[int]:
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
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


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of the process in MiB (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
