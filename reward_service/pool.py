"""A pool of killable grading processes with a hard per-item time limit.

Why processes: symbolic math can hang on pathological input (exponent towers, huge integers) and a Python
thread cannot be interrupted in the middle of a C call; SIGALRM only works on the main thread and cannot
interrupt big-integer arithmetic either. A spawned process can always be killed.

How it works (one dispatcher thread in the parent, N spawned worker processes):

* Callers ``submit`` batches; their items go into one FIFO queue.
* The dispatcher sends *chunks* of items to workers (one pickle + one write per chunk, not per item) and keeps
  at most two chunks in flight per worker, so a worker never waits for the parent between chunks.
* A worker grades its items in order and streams one small result tuple back per item. So the parent always
  knows which item a worker is on (the first unanswered one) and since when (the arrival of the previous
  result, or the moment the chunk was sent to an idle worker).
* An item running longer than ``timeout`` seconds: the worker is killed (SIGKILL), the item gets
  ``Grade("wrong", None, "timeout")``, the worker's other unanswered items go back to the front of the queue,
  and a fresh worker is spawned. Nothing else in the batch is affected.
* A worker that dies on its own (OOM killer, a segfault, ``kill -9`` from outside) is replaced the same way;
  the item it was on is retried once, and graded ``wrong`` with reason ``crash: ...`` if it kills a worker again.
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
import multiprocessing
import multiprocessing.connection as mpc
import os
import socket
import threading
import time
import traceback
from typing import Any, Iterable, Optional, Sequence

from reward_service.grading import WRONG, Grade
from reward_service.pool_types import (  # noqa: F401  (re-exported: the pool's public names)
    ITEM_SECONDS_BUCKETS,
    TIMEOUT_REASON,
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

# Chunk sizing. A prefetched chunk must fit in the socket buffer (about 208 KiB on Linux) together with the
# one the worker may not have read yet, so the dispatcher never blocks on a write while a worker is busy.
_MAX_CHUNK_ITEMS = 32
_MAX_CHUNK_CHARS = 12_000  # <= 48 KB of UTF-8 per prefetched chunk
_MAX_INFLIGHT_CHUNKS = 2
_STARTUP_FAILURES_BEFORE_BROKEN = 3


# --------------------------------------------------------------------------------------------- parent side


def _context(method: str):
    if method not in ("forkserver", "spawn"):
        raise ValueError(f"start_method must be 'forkserver' or 'spawn', got {method!r}")
    if method == "forkserver" and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Read when the (process-wide) fork server starts; no effect if it is already running.
        ctx.set_forkserver_preload(["reward_service._preload"])
        return ctx
    return multiprocessing.get_context("spawn")


class _Batch:
    __slots__ = ("results", "remaining", "future")

    def __init__(self, n: int):
        self.results: list[Optional[Grade]] = [None] * n
        self.remaining = n
        self.future: concurrent.futures.Future = concurrent.futures.Future()


class _Task:
    __slots__ = ("tid", "batch", "index", "item", "key", "attempts")

    def __init__(self, tid: int, batch: _Batch, index: int, item: GradeItem, key: Optional[bytes]):
        self.tid, self.batch, self.index, self.item, self.key = tid, batch, index, item, key
        self.attempts = 0  # times a worker died while running this task


class _Worker:
    __slots__ = ("proc", "conn", "ready", "spawned_at", "inflight", "chunk_ends", "head_since", "pid")

    def __init__(self, proc, conn):
        self.proc = proc
        self.conn = conn
        self.ready = False
        self.spawned_at = time.monotonic()
        self.inflight: collections.deque[_Task] = collections.deque()  # sent, unanswered, in worker order
        self.chunk_ends: collections.deque[int] = collections.deque()  # tids that end each in-flight chunk
        self.head_since = 0.0  # when the worker started on inflight[0] (as seen from here)
        self.pid = proc.pid


class GradingPool:
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
    ):
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.n_workers = max(1, int(workers or os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.grader = grader
        self.cache_size = int(cache_size)
        self.warmup = warmup
        self.start_timeout = float(start_timeout)
        self.stats = PoolStats()

        self._ctx = _context(start_method)
        self.start_method = self._ctx.get_start_method()
        self._lock = threading.Lock()
        self._queue: collections.deque[_Task] = collections.deque()
        self._cache: "collections.OrderedDict[bytes, Grade]" = collections.OrderedDict()
        self._next_tid = 0
        self._closing = False
        self._broken: Optional[str] = None
        self._consecutive_start_failures = 0
        self._ready_event = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._workers: list[_Worker] = [self._spawn() for _ in range(self.n_workers)]
        self.stats.restarts = 0  # the first spawns are not restarts
        self._thread = threading.Thread(target=self._run, name="grading-pool-dispatcher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def submit(self, items: Iterable[Any]) -> concurrent.futures.Future:
        """Queue a batch; the future resolves to ``list[Grade]`` in input order (or raises GradingPoolError).

        Unlike grade_many, the list may hold grades with the ``ERROR`` verdict (the grader raised on them);
        pass it through ``check_errors`` to turn those into a GraderError.
        """
        items = [_as_item(x) for x in items]
        batch = _Batch(len(items))
        if not items:
            batch.future.set_result([])
            return batch.future
        keys = [self._key(it) for it in items] if self.cache_size > 0 else [None] * len(items)  # outside the lock
        hits = 0
        tasks = []
        with self._lock:
            if self._closing:
                raise GradingPoolError("the grading pool is closed")
            if self._broken:
                raise GradingPoolError(self._broken)
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
                tasks.append(_Task(self._next_tid, batch, i, it, key))
            self.stats.cache_hits += hits
            self.stats.cache_misses += len(tasks)
            self._queue.extend(tasks)
        if batch.remaining == 0:
            batch.future.set_result(batch.results)
        else:
            self._wake()
        return batch.future

    def grade_many(self, items: Iterable[Any], timeout: Optional[float] = None, on_error: str = "raise") -> list[Grade]:
        """Grade a batch and wait for it. Items: GradeItem, dict or (completion, gold[, fallback]) tuples.

        Timed-out items are ``wrong`` (reason ``timeout``). If the grading function raised on an item, a
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
        """Block until ``workers`` workers are ready (True), or the timeout passes / the pool breaks (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        want = min(workers, self.n_workers)
        while True:
            if self._ready_event.wait(0.05) and self.ready_workers >= want:
                return True
            if self._broken or (deadline is not None and time.monotonic() > deadline):
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
        """Why the pool cannot grade (workers fail to start), or None."""
        return self._broken

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
    def _key(item: GradeItem) -> Optional[bytes]:
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

    # ------------------------------------------------------------------ dispatcher thread

    def _spawn(self) -> _Worker:
        try:
            return self._start_worker(self._ctx)
        except Exception as e:  # e.g. the fork server cannot be reached: a plain spawned worker still works
            if self._ctx.get_start_method() == "spawn":
                raise
            log.error("cannot start a grading worker through the fork server (%s); spawning one", e)
            return self._start_worker(multiprocessing.get_context("spawn"))

    def _start_worker(self, ctx) -> _Worker:
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=worker_main, args=(child_conn, self.grader, self.warmup), name="grading-worker", daemon=True
        )
        proc.start()
        child_conn.close()
        self.stats.restarts += 1
        return _Worker(proc, parent_conn)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # never leave callers hanging
            msg = "grading pool dispatcher crashed:\n" + traceback.format_exc()
            log.error(msg)
            self._broken = msg  # later submits fail at once instead of waiting forever
            self._fail_all(msg)
        finally:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except Exception:
                    pass
            for w in self._workers:
                w.proc.join(0.5)
                if w.proc.is_alive():
                    w.proc.kill()
                try:
                    w.conn.close()
                except Exception:
                    pass
            if self._closing:
                self._fail_all("the grading pool is closed")

    def _loop(self) -> None:
        while True:
            if self._closing:
                return
            now = time.monotonic()
            waitables: list[Any] = [self._wake_r]
            next_deadline = now + 1.0
            for w in self._workers:
                waitables.append(w.conn)
                waitables.append(w.proc.sentinel)
                if w.ready and w.inflight:
                    next_deadline = min(next_deadline, w.head_since + self.timeout)
                elif not w.ready:
                    next_deadline = min(next_deadline, w.spawned_at + self.start_timeout)
            ready = mpc.wait(waitables, timeout=max(0.0, next_deadline - now) + 0.001)
            if self._wake_r in ready:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
            for w in list(self._workers):
                if w.conn in ready or w.proc.sentinel in ready:
                    self._drain(w)
            self._check_deadlines()
            self._assign()

    def _drain(self, w: _Worker) -> None:
        """Read every message the worker has sent; handle its death if its process ended."""
        dead = False
        try:
            while w.conn.poll():
                self._on_message(w, w.conn.recv())
                if w not in self._workers:  # replaced after a startup error
                    return
        except (EOFError, OSError):
            dead = True
        if dead or not w.proc.is_alive():
            w.proc.join(0.1)
            self._on_death(w, f"exit code {w.proc.exitcode}")

    def _on_message(self, w: _Worker, msg: tuple) -> None:
        now = time.monotonic()
        if len(msg) == 2:  # control message
            kind, payload = msg
            if kind == "ready":
                w.ready = True
                self._consecutive_start_failures = 0
                self._ready_event.set()
            elif kind == "error":
                self._on_start_failure(w, f"grading worker failed to start ({self.grader}):\n{payload}")
            return
        tid, verdict, answer, reason, method, seconds = msg
        if not w.inflight or w.inflight[0].tid != tid:  # cannot happen: results come in order
            log.error("out-of-order result %s from worker %s", tid, w.pid)
            return
        task = w.inflight.popleft()
        if w.chunk_ends and w.chunk_ends[0] == tid:
            w.chunk_ends.popleft()
        w.head_since = now
        s = self.stats
        if verdict in (ERROR, INVALID):
            if verdict == ERROR:
                s.grader_errors += 1
            g = Grade(verdict, None, reason, None)
            cacheable = False
        else:
            g = Grade(verdict, answer, reason, method)
            cacheable = True
        for i, ub in enumerate(ITEM_SECONDS_BUCKETS):
            if seconds <= ub:
                s.item_seconds_buckets[i] += 1
                break
        else:
            s.item_seconds_buckets[-1] += 1
        s.item_seconds_sum += seconds
        self._finish(task, g, cacheable)

    def _finish(self, task: _Task, g: Grade, cacheable: bool = False) -> None:
        b = task.batch
        if b.results[task.index] is not None:
            return
        b.results[task.index] = g
        b.remaining -= 1
        with self._lock:
            self._count(g)
            if cacheable and task.key is not None and self.cache_size > 0:
                self._cache[task.key] = g
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if b.remaining == 0 and not b.future.done():
            b.future.set_result(b.results)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for w in list(self._workers):
            if w.ready and w.inflight and now - w.head_since > self.timeout:
                # Last look: the result may have arrived just now.
                self._drain(w)
                if w not in self._workers or not w.inflight or time.monotonic() - w.head_since <= self.timeout:
                    continue
                task = w.inflight.popleft()
                self.stats.timeouts += 1
                log.warning("item exceeded %.2fs; killing worker %s", self.timeout, w.pid)
                self._replace(w)
                self._finish(task, Grade(WRONG, None, TIMEOUT_REASON, None))
            elif not w.ready and now - w.spawned_at > self.start_timeout:
                self._on_start_failure(w, f"grading worker did not start within {self.start_timeout:.0f}s")

    def _on_death(self, w: _Worker, why: str) -> None:
        if w not in self._workers:
            return
        if not w.ready:
            self._on_start_failure(w, f"grading worker died during startup ({why})")
            return
        if w.inflight:
            self.stats.crashes += 1
            head = w.inflight.popleft()
            head.attempts += 1
            log.warning("grading worker %s died (%s) with %d unanswered items", w.pid, why, len(w.inflight) + 1)
            self._replace(w)
            if head.attempts >= 2:
                self.stats.crash_verdicts += 1
                self._finish(head, Grade(WRONG, None, f"crash: the grading process died twice on this item ({why})"))
            else:
                self.stats.retries += 1
                with self._lock:
                    self._queue.appendleft(head)
        else:
            self._replace(w)

    def _replace(self, w: _Worker) -> None:
        """Kill ``w``, put its unanswered items back at the front of the queue, start a fresh worker."""
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join(1.0)
        try:
            w.conn.close()
        except Exception:
            pass
        with self._lock:
            self._queue.extendleft(reversed(w.inflight))
        w.inflight.clear()
        idx = self._workers.index(w)
        if self._closing:
            self._workers.pop(idx)
            return
        self._workers[idx] = self._spawn()

    def _on_start_failure(self, w: _Worker, msg: str) -> None:
        self.stats.startup_failures += 1
        self._consecutive_start_failures += 1
        log.error(msg)
        if self._consecutive_start_failures >= _STARTUP_FAILURES_BEFORE_BROKEN and not any(
            x.ready for x in self._workers
        ):
            self._broken = msg
            self._fail_all(msg)
        self._replace(w)

    def _fail_all(self, msg: str) -> None:
        with self._lock:
            tasks = list(self._queue)
            self._queue.clear()
        for w in self._workers:
            tasks.extend(w.inflight)
            w.inflight.clear()
        for t in tasks:
            if not t.batch.future.done():
                t.batch.future.set_exception(GradingPoolError(msg))

    def _assign(self) -> None:
        if not self._queue:
            return
        ready = [w for w in self._workers if w.ready and len(w.chunk_ends) < _MAX_INFLIGHT_CHUNKS]
        if not ready:
            return
        ready.sort(key=lambda w: len(w.inflight))
        for w in ready:
            while len(w.chunk_ends) < _MAX_INFLIGHT_CHUNKS:
                chunk = self._take_chunk(prefetch=bool(w.inflight))
                if not chunk:
                    break  # queue empty, or a big item that only an idle worker may take
                if not w.inflight:
                    w.head_since = time.monotonic()
                w.inflight.extend(chunk)
                w.chunk_ends.append(chunk[-1].tid)
                try:
                    w.conn.send([(t.tid, t.item.completion, t.item.gold, t.item.last_number_fallback) for t in chunk])
                except (OSError, EOFError, ValueError):
                    self._on_death(w, "pipe closed")
                    return

    def _take_chunk(self, prefetch: bool) -> list[_Task]:
        """Pop the next chunk of live tasks. Small chunks when the queue is short, so all workers get work."""
        with self._lock:
            q = self._queue
            n_ready = max(1, sum(1 for w in self._workers if w.ready))
            want = max(1, min(_MAX_CHUNK_ITEMS, -(-len(q) // (2 * n_ready))))
            chunk: list[_Task] = []
            chars = 0
            while q and len(chunk) < want:
                t = q[0]
                if t.batch.future.done():  # cancelled (client went away) or failed: drop
                    q.popleft()
                    continue
                size = len(t.item.completion) + (len(t.item.gold) if isinstance(t.item.gold, str) else 64)
                if chunk and chars + size > _MAX_CHUNK_CHARS:
                    break
                if not chunk and size > _MAX_CHUNK_CHARS and prefetch:
                    break  # a big item goes alone, and only to a worker with nothing in flight
                q.popleft()
                chunk.append(t)
                chars += size
            return chunk


def grade_many(items: Sequence[Any], workers: Optional[int] = None, timeout: float = 2.0, **kw) -> list[Grade]:
    """One-shot convenience: start a pool, grade, stop it (prefer a long-lived GradingPool for many calls)."""
    with GradingPool(workers=workers, timeout=timeout, **kw) as pool:
        return pool.grade_many(items)
