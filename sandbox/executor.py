"""The executor: a pool of sandbox processes that run Python snippets in parallel, each snippet in a fresh process.

    with PythonExecutor(workers=4, limits=SandboxLimits(timeout_s=5)) as ex:
        results = ex.run_many(["print(2**10)", "while True: pass", "import socket; socket.socket()"])
        # [ExecResult(status='ok', stdout='1024\\n'), ExecResult(status='timeout', ...), ExecResult(status='error',
        #  error="PermissionError: sandbox: network access (socket.__new__) is not allowed")]

Each worker is one sandbox process (``sandbox._zygote``) started from a clean slate -- a fresh interpreter
(``python -I``), a fixed environment with none of this process's variables, no inherited file descriptors --
that isolates itself (``isolation``: namespaces where the kernel allows it, see ``sandbox._jail``), preloads
modules (``preload``: sympy and numpy by default, so snippets do not pay their import time) and then forks one
process per snippet. A worker that dies or stops answering is killed and replaced; the snippet it was running
gets a ``sandbox_error`` result. Nothing a snippet does raises here: every outcome is an :class:`ExecResult`.

Thread-safe: ``run_many`` spreads the snippets over the workers; concurrent callers share the pool.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

from sandbox.limits import ISOLATIONS, SANDBOX_ERROR, ExecResult, SandboxLimits

log = logging.getLogger("sandbox")

ZYGOTE = Path(__file__).with_name("_zygote.py")
DEFAULT_PRELOAD = ("math", "cmath", "fractions", "decimal", "itertools", "functools", "collections", "statistics",
                   "random", "re", "numpy", "sympy")
# the only environment a snippet sees (nothing of the caller's: tokens, paths, proxies)
SNIPPET_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "NUMEXPR_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
_HEADER = struct.Struct(">I")
_GRACE_S = 10.0  # beyond the snippet's own timeout before a silent sandbox process counts as hung


class SandboxStartError(RuntimeError):
    """A sandbox process could not start (or the requested isolation is not available)."""


class _Zygote:
    """One sandbox process and its pipes."""

    def __init__(self, config: dict, python: str, root: str, start_timeout_s: float):
        self.root = tempfile.mkdtemp(dir=root, prefix="w")
        cfg = dict(config, root_dir=self.root)
        self.proc = subprocess.Popen([python, "-I", "-B", str(ZYGOTE), json.dumps(cfg)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=dict(SNIPPET_ENV), cwd="/", close_fds=True,
                                     start_new_session=True)
        self.hello = self._read(start_timeout_s)
        if self.hello is None:
            code = self.kill()
            raise SandboxStartError(f"the sandbox process did not start (exit code {code}); see its stderr above")
        if not self.hello.get("ready"):
            self.kill()
            raise SandboxStartError(self.hello.get("error", "the sandbox process refused to start"))

    def _read(self, timeout: float):
        """The next frame from the sandbox process, or None at EOF or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        head = self._read_exact(_HEADER.size, deadline)
        body = self._read_exact(_HEADER.unpack(head)[0], deadline) if head is not None else None
        return json.loads(body.decode("utf-8")) if body is not None else None

    def _read_exact(self, n: int, deadline: float):
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                return None
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def request(self, code: str, timeout: float) -> ExecResult:
        data = json.dumps({"code": code}).encode("utf-8")
        try:
            self.proc.stdin.write(_HEADER.pack(len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            return ExecResult.failure(f"the sandbox process is gone ({e}); it is being replaced")
        reply = self._read(timeout)
        if reply is None:
            code_ = self.kill()
            return ExecResult.failure(f"the sandbox process stopped answering (exit code {code_}); it was replaced")
        try:
            return ExecResult.from_dict(reply)
        except (TypeError, ValueError) as e:
            self.kill()
            return ExecResult.failure(f"malformed reply from the sandbox process: {e}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)
        return code


class PythonExecutor:
    """A pool of ``workers`` sandbox processes (see the module docstring).

    Args:
        limits: per-snippet limits (:class:`SandboxLimits`).
        workers: sandbox processes, i.e. snippets running at once.
        isolation: ``auto`` (namespaces if the kernel allows them, else rlimits), ``namespaces`` (fail if not
            available) or ``rlimits``.
        preload: modules imported once per worker before any snippet (missing ones are skipped with a warning).
        guard: the audit-hook guard (``sandbox._guest``); ``False`` leaves the kernel limits alone (tests).
        show_last_expression: print the value of a final expression statement, as a notebook cell does.
        python: the interpreter for the sandbox processes (default: this one).
    """

    def __init__(self, limits: Optional[SandboxLimits] = None, workers: int = 2, isolation: str = "auto",
                 preload: Sequence[str] = DEFAULT_PRELOAD, guard: bool = True, show_last_expression: bool = False,
                 python: Optional[str] = None, start_timeout_s: float = 120.0):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
        if sys.platform != "linux":
            raise SandboxStartError("the sandbox needs Linux (namespaces, rlimits, pidfd)")
        self.limits = limits or SandboxLimits()
        self.workers = workers
        self.python = python or sys.executable
        self.start_timeout_s = start_timeout_s
        self._config = {"limits": dict(self.limits.to_dict(), cpu_seconds=self.limits.cpu_seconds),
                        "isolation": isolation, "preload": list(preload), "guard": guard,
                        "show_last_expression": show_last_expression}
        self._root = tempfile.mkdtemp(prefix="mathrl-sandbox-")
        self._idle: queue.Queue[_Zygote] = queue.Queue()
        self._all: list[_Zygote] = []
        self._lock = threading.Lock()
        self._closed = False
        self.counts: Counter = Counter()
        self.seconds = 0.0
        self.restarts = 0
        with ThreadPoolExecutor(workers) as pool:
            started = list(pool.map(lambda _: self._try_start(), range(workers)))
        errors = [z for z in started if isinstance(z, Exception)]
        if errors:
            for z in started:
                if isinstance(z, _Zygote):
                    z.kill()
            shutil.rmtree(self._root, ignore_errors=True)
            raise errors[0]
        for z in started:
            self._all.append(z)
            self._idle.put(z)
        hello = started[0].hello
        self.isolation: str = hello["isolation"]
        self.preloaded: list[str] = hello.get("preloaded", [])
        self.warnings: list[str] = hello.get("warnings", [])
        for w in self.warnings:
            log.warning("sandbox: %s", w)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sandbox")

    def _try_start(self):
        try:
            return _Zygote(self._config, self.python, self._root, self.start_timeout_s)
        except Exception as e:  # noqa: BLE001 -- collected and raised by the caller
            return e

    def _acquire(self) -> _Zygote:
        z = self._idle.get()
        if z.alive:
            return z
        z.kill()
        with self._lock:
            self.restarts += 1
            self._all.remove(z)
        fresh = _Zygote(self._config, self.python, self._root, self.start_timeout_s)
        with self._lock:
            self._all.append(fresh)
        return fresh

    def run(self, code: str) -> ExecResult:
        """Run one snippet (blocks; thread-safe)."""
        if self._closed:
            raise RuntimeError("the executor is closed")
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        t0 = time.perf_counter()
        try:
            z = self._acquire()
        except SandboxStartError as e:
            res = ExecResult.failure(f"no sandbox process: {e}")
        else:
            try:
                res = z.request(code, self.limits.timeout_s + _GRACE_S)
            finally:
                self._idle.put(z)
        with self._lock:
            self.counts[res.status] += 1
            self.seconds += time.perf_counter() - t0
        if res.status == SANDBOX_ERROR:
            log.warning("sandbox: %s", res.error)
        return res

    def run_many(self, codes: Sequence[str]) -> list[ExecResult]:
        """Run snippets in parallel over the workers; results in input order."""
        return list(self._pool.map(self.run, codes))

    def stats(self) -> dict:
        with self._lock:
            return {"snippets": sum(self.counts.values()), "by_status": dict(self.counts),
                    "busy_seconds": self.seconds, "restarts": self.restarts, "workers": self.workers,
                    "isolation": self.isolation}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        with self._lock:
            for z in self._all:
                z.kill()
            self._all.clear()
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> "PythonExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass
