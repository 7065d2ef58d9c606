"""Processes read from /proc (Linux): a reward service's grading workers and memory, and process trees for the
tests that check what survives a kill (a process is identified by its pid and start time, so a recycled pid is
not mistaken for a survivor, and a zombie counts as dead)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Iterable, Optional

Proc = tuple[int, int]  # (pid, start time in clock ticks since boot)


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


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def worker_pids(server_pid: int) -> list[int]:
    """Grading workers of the server: forked by its multiprocessing fork server (or spawned directly)."""
    pids = []
    for child in children(server_pid):
        cmd = cmdline(child)
        if "forkserver" in cmd:
            pids += children(child)
        elif "spawn_main" in cmd:
            pids.append(child)
    return pids


def kill_workers(server_pid: int) -> int:
    """SIGKILL every grading worker the server has now; the number killed (one already gone is skipped)."""
    killed = 0
    for w in worker_pids(server_pid):
        try:
            os.kill(w, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of the process in MiB (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _stat(pid: int) -> Optional[tuple[str, int]]:
    """(state letter, start time) of a process, or None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[19])


def tree(pid: int) -> list[Proc]:
    """``pid`` and all its descendants that exist now."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        st = _stat(p)
        if st is None:
            continue
        out.append((p, st[1]))
        todo += children(p)
    return out


def alive(proc: Proc) -> bool:
    st = _stat(proc[0])
    return st is not None and st[1] == proc[1] and st[0] not in ("Z", "X")


def survivors(procs: Iterable[Proc], timeout: float) -> list[Proc]:
    """Wait up to ``timeout`` seconds for every process to end; return those still alive."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill_all(procs: Iterable[Proc]) -> None:
    """SIGKILL the given processes that are still the same processes (test cleanup)."""
    for p in procs:
        if alive(p):
            try:
                os.kill(p[0], signal.SIGKILL)
            except OSError:
                pass
