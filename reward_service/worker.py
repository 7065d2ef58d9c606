"""The grading worker process of ``reward_service.pool``: import the grader, then grade chunks of items.

Protocol (over a multiprocessing Pipe): the worker sends ``("ready", pid)`` once warm, or ``("error", tb)`` if
the grader cannot be imported. It then receives lists of ``(tid, completion, gold, last_number_fallback)``
(``None`` = stop) and answers each item, in order, with
``(tid, verdict, answer, reason, method, seconds)``; ``verdict`` is ``ERROR`` when the grading function raised
and ``INVALID`` when it rejected the item's input.
"""
from __future__ import annotations

import importlib
import multiprocessing.connection as mpc
import os
import signal
import sys
import time
import traceback
from typing import Any, Callable

from reward_service.grading import CORRECT, NO_ANSWER, WRONG

DEFAULT_GRADER = "reward_service.grading:grade"
# Verdict of an item on which the grading function raised. A grader bug is not a verdict on the completion:
# grade_many raises GraderError for it by default, and the service answers 500 (never a silent reward).
ERROR = "error"
# Verdict of an item whose input the grader rejects (e.g. an empty gold: reward_service.grading.GoldError, or
# any exception with ``invalid_input = True``): the caller's mistake, reported as such (HTTP 422).
INVALID = "invalid"
_VERDICTS = frozenset({CORRECT, WRONG, NO_ANSWER})

# Graded once by every new worker before it takes work, so that lazy imports on the symbolic path do not
# count against the first real item's time limit.
WARMUP_ITEMS = (
    ("The answer is \\boxed{\\frac{1}{2}}", "0.5"),
    ("\\boxed{x^2+1}", "1+x^2"),
    ("\\boxed{\\sin(\\pi/6)}", "\\frac{1}{2}"),
    ("\\boxed{y=2x+1}", "2x-y+1=0"),
    ("\\boxed{[1,2)}", "[1, 2)"),
)


def _is_invalid_input(e: BaseException) -> bool:
    """Did the grader reject the item's input (the caller's mistake) rather than fail (a grader bug)?"""
    if getattr(e, "invalid_input", False):
        return True
    try:
        from reward_service.grading import GoldError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, GoldError)


def load_callable(path: str) -> Callable:
    """Import ``"package.module:attribute"`` (``"package.module.attribute"`` also works)."""
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    else:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise ValueError(f"expected 'module:function', got {path!r}")
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{path!r} is not callable")
    return obj


def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this worker when the parent process dies (best effort)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except Exception:  # pragma: no cover - best effort only
            pass


def warm_up_grader(grader_path: str = DEFAULT_GRADER) -> Callable:
    """Import the grader and pay its first-call costs (lazy sympy/LaTeX-parser imports: ~2 s); return it."""
    fn = load_callable(grader_path)
    module_warmup = getattr(sys.modules.get(getattr(fn, "__module__", ""), None), "warmup", None)
    if callable(module_warmup):  # the grading library's own warm-up, when it has one
        try:
            module_warmup()
        except Exception:
            pass
    for completion, gold in WARMUP_ITEMS:
        try:
            fn(completion, gold, last_number_fallback=False)
        except Exception:
            pass
    return fn


def worker_main(conn: mpc.Connection, grader_path: str, warmup: bool, nice: int = 0) -> None:
    """Worker process: import the grader, then grade chunks and stream one result per item.

    ``nice`` > 0 lowers the worker's CPU priority: when the CPUs are contended, the server's event loop and
    the pool's dispatcher (latency-critical, little CPU) run first; on idle CPUs it changes nothing."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    if nice > 0:
        try:
            os.nice(nice)
        except OSError:  # pragma: no cover - not allowed here: run at the normal priority
            pass
    try:
        fn = warm_up_grader(grader_path) if warmup else load_callable(grader_path)
    except BaseException:
        conn.send(("error", traceback.format_exc(limit=5)))
        return
    conn.send(("ready", os.getpid()))
    clock = time.perf_counter
    send = conn.send
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for tid, completion, gold, fallback in chunk:
            t0 = clock()
            try:
                g = fn(completion, gold, last_number_fallback=fallback)
                if g.verdict not in _VERDICTS:
                    raise ValueError(f"the grader returned the verdict {g.verdict!r}")
                msg = (tid, g.verdict, g.answer, g.reason, getattr(g, "method", None), clock() - t0)
            except Exception as e:  # bad input, or a grader bug: report it, never a silent reward
                if _is_invalid_input(e):
                    msg = (tid, INVALID, None, str(e)[:500], None, clock() - t0)
                else:
                    msg = (tid, ERROR, None, f"grader error: {type(e).__name__}: {e}"[:500], None, clock() - t0)
            send(msg)
