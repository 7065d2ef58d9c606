"""The dispatcher thread's half of ``GradingPool`` (see reward_service/pool.py for how the pool works).

``GradingPool`` is the callers' side (submit, wait, state); this mixin holds what runs in its dispatcher
thread: starting, watching, killing and restarting worker processes (with a bounded backoff after failed
starts), sending them chunks of items from the fair queue, and resolving batches.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import multiprocessing
import multiprocessing.connection as mpc
import time
import traceback
from typing import Any, Optional

from reward_service.grading import WRONG, Grade
from reward_service.pool_types import ITEM_SECONDS_BUCKETS, TIMEOUT_REASON, GradedBatch, GradeItem, GradingPoolError
from reward_service.worker import ERROR, INVALID, worker_main

log = logging.getLogger("reward_service.pool")

# Chunk sizing. A prefetched chunk must fit in the socket buffer (about 208 KiB on Linux) together with the
# one the worker may not have read yet, so the dispatcher never blocks on a write while a worker is busy.
_MAX_CHUNK_ITEMS = 8
_MAX_CHUNK_CHARS = 12_000  # <= 48 KB of UTF-8 per prefetched chunk
_MAX_INFLIGHT_CHUNKS = 2
# Failed starts in a row (with no worker ready) after which the pool is "unavailable": batches fail at once.
_STARTUP_FAILURES_BEFORE_UNAVAILABLE = 3
_RESTART_BACKOFF_FIRST = 0.25  # seconds before the second attempt after a failed start; doubles up to the max


def mp_context(method: str):
    if method not in ("forkserver", "spawn"):
        raise ValueError(f"start_method must be 'forkserver' or 'spawn', got {method!r}")
    if method == "forkserver" and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Read when the (process-wide) fork server starts; no effect if it is already running.
        ctx.set_forkserver_preload(["reward_service._preload"])
        return ctx
    return multiprocessing.get_context("spawn")


class Batch:
    __slots__ = ("results", "retries", "remaining", "future")

    def __init__(self, n: int):
        self.results: list[Optional[Grade]] = [None] * n
        self.retries = [0] * n
        self.remaining = n
        self.future: concurrent.futures.Future = concurrent.futures.Future()


class Task:
    __slots__ = ("tid", "batch", "index", "item", "key", "failures")

    def __init__(self, tid: int, batch: Batch, index: int, item: GradeItem, key: Optional[bytes]):
        self.tid, self.batch, self.index, self.item, self.key = tid, batch, index, item, key
        self.failures = 0  # times its worker hung past the limit or died while running it


def task_alive(task: Task) -> bool:
    return not task.batch.future.done()  # done early: cancelled (the client went away) or failed


class WorkerHandle:
    __slots__ = ("proc", "conn", "ready", "spawned_at", "inflight", "chunk_ends", "head_since", "pid")

    def __init__(self, proc, conn):
        self.proc = proc
        self.conn = conn
        self.ready = False
        self.spawned_at = time.monotonic()
        self.inflight: collections.deque[Task] = collections.deque()  # sent, unanswered, in worker order
        self.chunk_ends: collections.deque[int] = collections.deque()  # tids that end each in-flight chunk
        self.head_since = 0.0  # when the worker started on inflight[0] (as seen from here)
        self.pid = proc.pid


class DispatcherMixin:
    """Runs in the pool's dispatcher thread. Attributes come from ``GradingPool.__init__``."""

    def _spawn(self) -> WorkerHandle:
        try:
            return self._start_worker(self._ctx)
        except Exception as e:  # e.g. the fork server cannot be reached: a plain spawned worker still works
            if self._ctx.get_start_method() == "spawn":
                raise
            log.error("cannot start a grading worker through the fork server (%s); spawning one", e)
            return self._start_worker(multiprocessing.get_context("spawn"))

    def _start_worker(self, ctx) -> WorkerHandle:
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=worker_main, args=(child_conn, self.grader, self.warmup, self.worker_nice), name="grading-worker",
            daemon=True
        )
        try:
            proc.start()
        finally:
            child_conn.close()
        self.stats.restarts += 1
        return WorkerHandle(proc, parent_conn)

    def _start_worker_slot(self) -> None:
        """Start a worker in an empty slot; if even the process cannot be started, try again after a backoff."""
        try:
            self._workers.append(self._spawn())
        except Exception as e:  # out of processes or memory, ...: not fatal, the pool keeps trying
            self._start_failed(f"cannot start a grading worker process: {type(e).__name__}: {e}")

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:  # never leave callers hanging
            msg = "grading pool dispatcher crashed:\n" + traceback.format_exc()
            log.error(msg)
            self._crashed = msg  # later submits fail at once instead of waiting forever
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
            next_deadline = min([now + 1.0] + self._respawn_at)
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
            self._respawn_due()
            self._assign()

    def _drain(self, w: WorkerHandle) -> None:
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

    def _on_message(self, w: WorkerHandle, msg: tuple) -> None:
        now = time.monotonic()
        if len(msg) == 2:  # control message
            kind, payload = msg
            if kind == "ready":
                w.ready = True
                self._consecutive_start_failures = 0
                if self._unavailable:
                    log.warning("a grading worker started again: the pool is available")
                self._unavailable = None
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
            cacheable = task.failures == 0  # a retried item's grade may depend on the first attempt's fault
        for i, ub in enumerate(ITEM_SECONDS_BUCKETS):
            if seconds <= ub:
                s.item_seconds_buckets[i] += 1
                break
        else:
            s.item_seconds_buckets[-1] += 1
        s.item_seconds_sum += seconds
        self._finish(task, g, cacheable)

    def _finish(self, task: Task, g: Grade, cacheable: bool = False, failed: bool = False) -> None:
        """Resolve one item; ``failed``: its last run failed too (then it was run ``failures`` times, else
        ``failures + 1``)."""
        b = task.batch
        if b.results[task.index] is not None:
            return
        b.results[task.index] = g
        b.retries[task.index] = task.failures - 1 if failed else task.failures
        b.remaining -= 1
        with self._lock:
            self._count(g)
            if cacheable and task.key is not None and self.cache_size > 0:
                self._cache[task.key] = g
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if b.remaining == 0 and not b.future.done():
            b.future.set_result(GradedBatch(b.results, b.retries))

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for w in list(self._workers):
            if w.ready and w.inflight and now - w.head_since > self.timeout:
                # Last look: the result may have arrived just now.
                self._drain(w)
                if w not in self._workers or not w.inflight or time.monotonic() - w.head_since <= self.timeout:
                    continue
                task = w.inflight.popleft()
                task.failures += 1
                log.warning("item exceeded %.2fs; killing worker %s", self.timeout, w.pid)
                self._replace(w)
                if task.failures >= 2:
                    self.stats.timeouts += 1
                    self._finish(task, Grade(WRONG, None, TIMEOUT_REASON, None), failed=True)
                else:  # the worker may have been the problem (stopped, starved): once more, on another worker
                    self.stats.timeout_retries += 1
                    with self._lock:
                        self._queue.push_front([task])
            elif not w.ready and now - w.spawned_at > self.start_timeout:
                self._on_start_failure(w, f"grading worker did not start within {self.start_timeout:.0f}s")

    def _on_death(self, w: WorkerHandle, why: str) -> None:
        if w not in self._workers:
            return
        if not w.ready:
            self._on_start_failure(w, f"grading worker died during startup ({why})")
            return
        if w.inflight:
            self.stats.crashes += 1
            head = w.inflight.popleft()
            head.failures += 1
            log.warning("grading worker %s died (%s) with %d unanswered items", w.pid, why, len(w.inflight) + 1)
            self._replace(w)
            if head.failures >= 2:
                self.stats.crash_verdicts += 1
                self._finish(head, Grade(WRONG, None, f"crash: the grading process died twice on this item ({why})"),
                             failed=True)
            else:
                self.stats.retries += 1
                with self._lock:
                    self._queue.push_front([head])
        else:
            self._replace(w)

    def _replace(self, w: WorkerHandle, failed_start: bool = False) -> None:
        """Kill ``w``, put its unanswered items back at the front of the queue, start a fresh worker (after a
        backoff when ``w`` failed to start)."""
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join(1.0)
        try:
            w.conn.close()
        except Exception:
            pass
        with self._lock:
            self._queue.push_front(w.inflight)
        w.inflight.clear()
        self._workers.remove(w)
        if self._closing:
            return
        delay = self._restart_delay() if failed_start else 0.0
        if delay > 0:
            self._respawn_at.append(time.monotonic() + delay)
        else:
            self._start_worker_slot()

    def _restart_delay(self) -> float:
        """No wait after one failed start, then 0.25 s doubling up to ``restart_backoff_max``."""
        k = self._consecutive_start_failures
        return 0.0 if k <= 1 else min(self.restart_backoff_max, _RESTART_BACKOFF_FIRST * 2 ** (k - 2))

    def _respawn_due(self) -> None:
        now = time.monotonic()
        due = [t for t in self._respawn_at if t <= now]
        for t in due:
            self._respawn_at.remove(t)
            if not self._closing:
                self._start_worker_slot()

    def _on_start_failure(self, w: WorkerHandle, msg: str) -> None:
        self._count_start_failure(msg)
        self._replace(w, failed_start=True)
        self._check_unavailable(msg)

    def _start_failed(self, msg: str) -> None:
        """Starting a process failed outright (no worker object): count it and schedule another attempt."""
        self._count_start_failure(msg)
        self._respawn_at.append(time.monotonic() + max(self._restart_delay(), _RESTART_BACKOFF_FIRST))
        self._check_unavailable(msg)

    def _count_start_failure(self, msg: str) -> None:
        self.stats.startup_failures += 1
        self._consecutive_start_failures += 1
        self._last_start_error = msg
        log.error(msg)

    def _check_unavailable(self, msg: str) -> None:
        if self._consecutive_start_failures >= _STARTUP_FAILURES_BEFORE_UNAVAILABLE and not any(
            x.ready for x in self._workers
        ):
            if not self._unavailable:
                log.error("no grading worker can start; failing requests until one does (retrying with backoff)")
            self._unavailable = msg
            self._fail_all(self._why_unavailable())

    def _fail_all(self, msg: str) -> None:
        with self._lock:
            tasks = self._queue.drain()
        for w in self._workers:
            tasks.extend(w.inflight)
            w.inflight.clear()
            w.chunk_ends.clear()
        for t in tasks:
            if not t.batch.future.done():
                t.batch.future.set_exception(GradingPoolError(msg))

    def _assign(self) -> None:
        if not len(self._queue):
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

    def _take_chunk(self, prefetch: bool) -> list[Task]:
        """Pop the next chunk of live tasks. Small chunks when the queue is short, so all workers get work."""
        with self._lock:
            q = self._queue
            n_ready = max(1, sum(1 for w in self._workers if w.ready))
            want = max(1, min(_MAX_CHUNK_ITEMS, -(-len(q) // (2 * n_ready))))
            chunk: list[Task] = []
            chars = 0
            while len(chunk) < want:
                t = q.peek()
                if t is None:
                    break
                size = len(t.item.completion) + (len(t.item.gold) if isinstance(t.item.gold, str) else 64)
                if chunk and chars + size > _MAX_CHUNK_CHARS:
                    break
                if not chunk and size > _MAX_CHUNK_CHARS and prefetch:
                    break  # a big item goes alone, and only to a worker with nothing in flight
                q.pop()
                chunk.append(t)
                chars += size
            return chunk
