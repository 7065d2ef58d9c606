"""A pool of killable grading processes with a hard per-item time limit.

Why processes: symbolic math can hang on pathological input (exponent towers, huge integers) and a Python
thread cannot be interrupted in the middle of a C call; SIGALRM only works on the main thread and cannot
interrupt big-integer arithmetic either. A spawned process can always be killed.

How it works (one dispatcher thread in the parent, N spawned worker processes):

* Callers ``submit`` batches; each batch is a lane of a fair queue (``reward_service.fair_queue``): the next
  item comes from the batch with the fewest items left, so a small request is never stuck behind large ones
  and batches of equal size finish in arrival order.
* The dispatcher sends *chunks* of items to workers (one pickle + one write per chunk, not per item) and keeps
  at most two chunks in flight per worker, so a worker never waits for the parent between chunks.
* A worker grades its items in order and streams one small result tuple back per item. So the parent always
  knows which item a worker is on (the first unanswered one) and since when (the arrival of the previous
  result, or the moment the chunk was sent to an idle worker).
* An item running longer than ``timeout`` seconds: the worker is killed (SIGKILL), its other unanswered items
  go back to the front of the queue, a fresh worker is spawned, and the item is run once more on another
  worker (a hung or stopped worker is not the item's fault). Over the limit a second time, it gets
  ``Grade("wrong", None, "timeout")``. Nothing else in the batch is affected.
* A worker that dies on its own (OOM killer, a segfault, ``kill -9`` from outside) is replaced the same way;
  the item it was on is retried once, and graded ``wrong`` with reason ``crash: ...`` if it kills a worker again.
  ``GradedBatch.retries`` says which items were run twice.
* The pool heals: a worker that cannot start is started again after a bounded backoff (``restart_backoff_max``).
  While no worker can start (three failed starts in a row, none ready) the pool is ``unavailable``: batches
  fail at once with GradingPoolError instead of waiting, and it keeps trying; the first worker that starts
  makes it ``ok`` again. ``state`` and ``health()`` say where it stands.
* Identical (completion, gold, fallback) requests are answered from a bounded LRU cache in the parent.

No web imports here: the trainer and the eval harness use this pool in-process through the sync API::

    with GradingPool(workers=2, timeout=2.0) as pool:
        grades = pool.grade_many([("... \\boxed{1/2}", "0.5"), (completion, gold, True)])

The grading function is given by import path (``"package.module:function"``) and is imported inside each
worker; it is called as ``fn(completion, gold, last_number_fallback=bool)`` and must return an object with
``verdict``, ``answer``, ``reason`` and (optionally) ``method`` attributes.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import logging
import os
import socket
import threading
import time
from typing import Any, Iterable, Optional, Sequence

from reward_service.fair_queue import FairQueue
from reward_service.grading import Grade
from reward_service.pool_dispatch import Batch, DispatcherMixin, Task, WorkerHandle, mp_context, task_alive
from reward_service.pool_types import (  # noqa: F401  (re-exported: the pool's public names)
    ITEM_SECONDS_BUCKETS,
    TIMEOUT_REASON,
    GradedBatch,
    GradeItem,
    GraderError,
    GradingPoolError,
    InvalidItemError,
    PoolStats,
    _as_item,
    check_errors,
)
from reward_service.worker import (  # noqa: F401  (re-exported: the pool's public names)
    DEFAULT_GRADER,
    ERROR,
    INVALID,
    load_callable,
    warm_up_grader,
    worker_main,
)

log = logging.getLogger("reward_service.pool")


def _last_line(text: Optional[str]) -> Optional[str]:
    lines = (text or "").strip().splitlines()
    return lines[-1][:300] if lines else None


class GradingPool(DispatcherMixin):
    """Grade (completion, gold) pairs in killable worker processes. Thread-safe; use as a context manager.

    Args:
        workers: number of worker processes (default: number of CPUs).
        timeout: hard wall-clock limit per item in seconds; the worker is killed when it is exceeded.
        grader: import path of the grading function, ``fn(completion, gold, *, last_number_fallback) -> Grade``.
        cache_size: entries of the (completion, gold, fallback) result cache; 0 disables it.
        warmup: call the grader once in each worker before it takes work.
        start_timeout: seconds a worker may take to import the grader and report ready.
        start_method: "forkserver" (default where available) or "spawn". Both start workers from a fresh
            interpreter, never by forking this (threaded) process. With "forkserver" a single server process
            imports and warms the grading stack once and every worker is forked from it: a replacement worker
            after a timeout is ready in milliseconds instead of re-importing sympy for seconds.
        restart_backoff_max: longest wait (seconds) between attempts to start a worker after failed starts.
        worker_nice: lower the workers' CPU priority by this much (``os.nice``); the service uses it so that its
            event loop is scheduled first on busy CPUs.
    """

    def __init__(
        self,
        workers: Optional[int] = None,
        timeout: float = 2.0,
        grader: str = DEFAULT_GRADER,
        cache_size: int = 65536,
        warmup: bool = True,
        start_timeout: float = 120.0,
        start_method: str = "forkserver",
        restart_backoff_max: float = 10.0,
        worker_nice: int = 0,
    ):
        if timeout <= 0 or restart_backoff_max < 0:
            raise ValueError("timeout must be > 0 and restart_backoff_max >= 0")
        self.n_workers = max(1, int(workers or os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.grader = grader
        self.cache_size = int(cache_size)
        self.warmup = warmup
        self.start_timeout = float(start_timeout)
        self.restart_backoff_max = float(restart_backoff_max)
        self.worker_nice = int(worker_nice)
        self.stats = PoolStats()

        self._ctx = mp_context(start_method)
        self.start_method = self._ctx.get_start_method()
        self._lock = threading.Lock()
        self._queue = FairQueue(alive=task_alive)
        self._cache: "collections.OrderedDict[bytes, Grade]" = collections.OrderedDict()
        self._next_tid = 0
        self._closing = False
        self._crashed: Optional[str] = None  # the dispatcher thread died (a bug): nothing can be graded
        self._unavailable: Optional[str] = None  # no worker can start right now (it keeps trying)
        self._consecutive_start_failures = 0
        self._last_start_error: Optional[str] = None
        self._respawn_at: list[float] = []  # when to try starting a worker in each empty slot
        self._ready_event = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._workers: list[WorkerHandle] = []
        for _ in range(self.n_workers):
            self._start_worker_slot()
        self.stats.restarts = 0  # the first spawns are not restarts
        self._thread = threading.Thread(target=self._run, name="grading-pool-dispatcher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def submit(self, items: Iterable[Any], keys: Optional[Sequence[Optional[bytes]]] = None) -> concurrent.futures.Future:
        """Queue a batch; the future resolves to a ``GradedBatch`` (a ``list[Grade]`` in input order, with
        ``retries``), or raises GradingPoolError.

        Unlike grade_many, the list may hold grades with the ``ERROR`` verdict (the grader raised on them);
        pass it through ``check_errors`` to turn those into a GraderError. ``keys``: the items' ``cache_key``
        values, when the caller has computed them already.
        """
        items = [_as_item(x) for x in items]
        batch = Batch(len(items))
        if not items:
            batch.future.set_result(GradedBatch([], []))
            return batch.future
        if self.cache_size <= 0:
            keys = [None] * len(items)
        elif keys is None:
            keys = [self.cache_key(it) for it in items]  # outside the lock
        elif len(keys) != len(items):
            raise ValueError(f"{len(keys)} cache keys for {len(items)} items")
        hits = 0
        tasks = []
        with self._lock:
            if self._closing:
                raise GradingPoolError("the grading pool is closed")
            if self._crashed or self._unavailable:
                raise GradingPoolError(self._why_unavailable())
            for i, (it, key) in enumerate(zip(items, keys)):
                if key is not None:
                    g = self._cache.get(key)
                    if g is not None:
                        self._cache.move_to_end(key)
                        batch.results[i] = g
                        batch.remaining -= 1
                        self._count(g)
                        hits += 1
                        continue
                self._next_tid += 1
                tasks.append(Task(self._next_tid, batch, i, it, key))
            self.stats.cache_hits += hits
            self.stats.cache_misses += len(tasks)
            self._queue.push_batch(tasks)
        if batch.remaining == 0:
            batch.future.set_result(GradedBatch(batch.results, batch.retries))
        else:
            self._wake()
        return batch.future

    def grade_many(self, items: Iterable[Any], timeout: Optional[float] = None, on_error: str = "raise") -> list[Grade]:
        """Grade a batch and wait for it. Items: GradeItem, dict or (completion, gold[, fallback]) tuples.

        Returns a ``GradedBatch`` (a list of Grade with ``retries``). Items over the time limit on two workers
        are ``wrong`` (reason ``timeout``). If the grading function raised on an item, a
        GraderError is raised, or InvalidItemError when it rejected the item's input (an empty gold, ...);
        ``on_error="return"`` returns those items with the ``ERROR`` / ``INVALID`` verdict instead.
        """
        grades = self.submit(items).result(timeout)
        return check_errors(grades) if on_error == "raise" else grades

    def grade(self, completion: str, gold: Any, *, last_number_fallback: bool = False) -> Grade:
        return self.grade_many([GradeItem(completion, gold, last_number_fallback)])[0]

    async def agrade_many(self, items: Iterable[Any], on_error: str = "raise") -> list[Grade]:
        """asyncio version of grade_many; cancelling the awaiting task drops the batch's queued items."""
        grades = await asyncio.wrap_future(self.submit(items))
        return check_errors(grades) if on_error == "raise" else grades

    def wait_ready(self, timeout: Optional[float] = None, workers: int = 1) -> bool:
        """Block until ``workers`` workers are ready (True), or the timeout passes / the pool is unavailable."""
        deadline = None if timeout is None else time.monotonic() + timeout
        want = min(workers, self.n_workers)
        while True:
            if self._ready_event.wait(0.05) and self.ready_workers >= want:
                return True
            if self.broken or (deadline is not None and time.monotonic() > deadline):
                return False

    @property
    def started(self) -> bool:
        """True once a worker has been ready (the pool can grade, possibly after replacing workers)."""
        return self._ready_event.is_set()

    @property
    def ready_workers(self) -> int:
        return sum(1 for w in list(self._workers) if w.ready)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def broken(self) -> Optional[str]:
        """Why the pool cannot grade right now (no worker can start, or the dispatcher died), or None."""
        return self._crashed or self._unavailable

    @property
    def state(self) -> str:
        """``starting`` (no worker ready yet), ``ok`` (all ready), ``degraded`` (some being replaced: it still
        takes work), ``unavailable`` (no worker can start; retrying with backoff), ``crashed``, ``closed``."""
        if self._closing:
            return "closed"
        if self._crashed:
            return "crashed"
        if self._unavailable:
            return "unavailable"
        if not self._ready_event.is_set():
            return "starting"
        return "ok" if self.ready_workers >= self.n_workers else "degraded"

    def health(self) -> dict:
        """The pool's state for a health check (see ``state``)."""
        respawns = list(self._respawn_at)
        return {
            "status": self.state,
            "workers_ready": self.ready_workers,
            "workers": self.n_workers,
            "queue_depth": self.queue_depth,
            "restarts": self.stats.restarts,
            "failed_starts_in_a_row": self._consecutive_start_failures,
            "last_start_error": _last_line(self._last_start_error),
            "next_start_in_s": round(max(0.0, min(respawns) - time.monotonic()), 3) if respawns else None,
        }

    def _why_unavailable(self) -> str:
        if self._crashed:
            return self._crashed
        nxt = self.health()["next_start_in_s"]
        when = f"; next attempt in {nxt:.1f}s" if nxt is not None else ""
        return f"no grading worker can start ({self._consecutive_start_failures} failed starts in a row{when}): " \
               f"{self._unavailable}"

    def worker_pids(self) -> list[int]:
        return [w.pid for w in list(self._workers) if w.ready]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers; batches still pending fail with GradingPoolError."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._wake()
        self._thread.join(timeout)
        for w in list(self._workers):
            if w.proc.is_alive():
                w.proc.kill()
            w.proc.join(1.0)
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> "GradingPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals (caller side)

    @staticmethod
    def cache_key(item: GradeItem) -> Optional[bytes]:
        """The result-cache key of an item (a hash of completion, gold and fallback), or None if unhashable."""
        try:
            gold = repr(item.gold) if not isinstance(item.gold, str) else "s" + item.gold
            h = hashlib.blake2b(item.completion.encode("utf-8", "surrogatepass"), digest_size=16)
            h.update(b"\x00" + gold.encode("utf-8", "surrogatepass") + (b"\x01" if item.last_number_fallback else b"\x00"))
            return h.digest()
        except Exception:  # unhashable oddities: just do not cache
            return None

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already has pending wake-ups (or closed)

    def _count(self, g: Grade) -> None:
        s = self.stats
        s.items += 1
        if g.verdict in s.verdicts:
            s.verdicts[g.verdict] += 1


def grade_many(items: Sequence[Any], workers: Optional[int] = None, timeout: float = 2.0, **kw) -> list[Grade]:
    """One-shot convenience: start a pool, grade, stop it (prefer a long-lived GradingPool for many calls)."""
    with GradingPool(workers=workers, timeout=timeout, **kw) as pool:
        return pool.grade_many(items)
