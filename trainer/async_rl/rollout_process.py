"""A rollout backend in a local process of its own (asynchronous RL on one machine).

    rollout = ProcessRollout(cfg, model_path, device="cpu")   # spawns the process, returns once it is ready
    out = rollout.generate(prompts, sampling)                  # blocking; rows carry response_versions
    rollout.push_weights(policy.named_weights(), version=3)    # returns at once: serialised, sent in background
    rollout.close()

The process builds its backend with the role factory (``build_worker(cfg, "rollout", Placement.own_process())``:
HF or vLLM from the model path) and serves requests in order. Weights pushed before a request are loaded before
it runs (one pipe, first in first out; weight updates not yet sent collapse into the newest, so a busy process
never queues stale copies). With ``rollout.partial_rollout`` it generates ``rollout.partial_rollout_chunk``
tokens at a time and loads weights that arrived meanwhile between chunks (``mathrl_core.rollout.partial``).

Why a process and not a thread: on a CPU machine the trainer and the rollout each get a core, where one
interpreter would serialise them on the GIL between torch operations.

Faults: the process dying (killed, out of memory, a crash) fails every waiting request with
``RolloutPipelineError`` naming its exit status; a request unanswered for ``rollout.async_timeout_s`` fails the
same way. The process exits by itself when the trainer's process dies, SIGKILL included
(``reward_service.lifeline``).
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import io
import itertools
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Mapping, Optional, Sequence

import torch

from mathrl_core.rollout.base import RolloutBackend, RolloutOutput
from mathrl_core.rollout.partial import generate_resumable
from mathrl_core.sampling import SamplingConfig
from reward_service.lifeline import exit_with_parent
from trainer.async_rl.errors import RolloutPipelineError
from trainer.config import RLConfig
from trainer.config_tree import load_config
from trainer.roles import Placement, build_worker

logger = logging.getLogger(__name__)
START_TIMEOUT_S = 600.0  # imports + model load (a vLLM engine: ~25-60 s on CPU), whatever rollout.async_timeout_s says


# ------------------------------------------------------------------------------------------ the child process
def _child_main(conn, cfg_dict: dict, model_path: str, device: str, parent_pid: int, threads: int) -> None:
    exit_with_parent(parent_pid, shutdown=lambda: os._exit(0), grace_s=0.0)
    try:
        torch.set_num_threads(threads)
        cfg = load_config(RLConfig, None, base=cfg_dict)
        backend = build_worker(cfg, "rollout", Placement.own_process(device), model_path=model_path)
        server = _Server(conn, backend, cfg.rollout.partial_rollout, cfg.rollout.partial_rollout_chunk)
        conn.send(("ready", os.getpid()))
        server.serve()
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the trainer is gone
        os._exit(0)
    except BaseException:
        try:
            conn.send(("fatal", traceback.format_exc()))
        finally:
            os._exit(1)


class _Server:
    """The child's request loop: weights are kept as pending (newest wins) and loaded before the next request
    (or between chunks of a partial rollout); requests run one at a time, in arrival order."""

    def __init__(self, conn, backend: RolloutBackend, partial: bool, chunk: int):
        self.conn, self.backend, self.partial, self.chunk = conn, backend, partial, chunk
        self.version = 0
        self.pending: Optional[tuple[int, bytes]] = None
        self.requests: collections.deque = collections.deque()

    def serve(self) -> None:
        while True:
            if not self.requests:
                self._receive()
                continue
            kind, *args = self.requests.popleft()
            if kind == "close":
                self.backend.close()
                return
            self._drain()
            self._load_pending()
            if kind == "sync":
                self.conn.send(("synced", args[0], self.version))
                continue
            rid, prompts, sampling, seeds = args
            try:
                out = self._generate(prompts, sampling, seeds)
            except Exception:  # a bad request: the caller gets the traceback, the engine stays up
                self.conn.send(("error", rid, traceback.format_exc()))
                continue
            self.conn.send(("result", rid, out))

    def _receive(self) -> None:
        msg = self.conn.recv()
        if msg[0] == "weights":
            if self.pending is None or msg[1] >= self.pending[0]:
                self.pending = (msg[1], msg[2])
        else:
            self.requests.append(msg)

    def _drain(self) -> None:
        while self.conn.poll():
            self._receive()

    def _load_pending(self) -> None:
        if self.pending is None:
            return
        version, payload = self.pending
        self.pending = None
        # a failure here leaves the engine's weights unknown: it propagates and ends the process (fatal)
        self.backend.update_weights(torch.load(io.BytesIO(payload), weights_only=True))
        self.version = version

    def _between_chunks(self) -> int:
        self._drain()
        self._load_pending()
        return self.version

    def _generate(self, prompts, sampling: SamplingConfig, seeds) -> RolloutOutput:
        if self.partial:
            return generate_resumable(self.backend, prompts, sampling, chunk_tokens=self.chunk, version=self.version,
                                      between_chunks=self._between_chunks, seeds=seeds)
        out = self.backend.generate(prompts, sampling, seeds=seeds)
        return dataclasses.replace(out, response_versions=[[self.version] * len(r) for r in out.response_token_ids])


# ------------------------------------------------------------------------------------------ the trainer's side
class _Outbox:
    """Messages to the child in order; an unsent weight update is replaced in place by a newer one."""

    def __init__(self):
        self._q: collections.deque = collections.deque()
        self._cv = threading.Condition()
        self._closed = False

    def put(self, msg: tuple) -> None:
        with self._cv:
            self._q.append(["msg", msg])
            self._cv.notify()

    def put_weights(self, version: int, payload: bytes) -> None:
        with self._cv:
            for entry in self._q:
                if entry[0] == "weights":
                    entry[1] = ("weights", version, payload)
                    return
            self._q.append(["weights", ("weights", version, payload)])
            self._cv.notify()

    def take(self) -> Optional[tuple]:
        with self._cv:
            while not self._q and not self._closed:
                self._cv.wait()
            return self._q.popleft()[1] if self._q else None

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._q.clear()
            self._cv.notify_all()


class ProcessRollout(RolloutBackend):
    """The trainer's handle on the rollout process (module docstring). ``generate`` may be called from any
    thread; answers are matched to requests by id."""

    shares_policy = False

    def __init__(self, cfg: RLConfig, model_path: str, *, device: str = "cpu", timeout_s: Optional[float] = None):
        self.timeout_s = timeout_s or cfg.rollout.async_timeout_s
        ctx = mp.get_context("spawn")  # never fork a process that holds torch threads (and vLLM insists)
        self._conn, child = ctx.Pipe()
        threads = max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))  # a second busy process: one core
        self.process = ctx.Process(target=_child_main, name="mathrl-rollout", daemon=False,
                                   args=(child, dataclasses.asdict(cfg), model_path, str(device), os.getpid(), threads))
        self.process.start()
        child.close()
        self.pid = self.process.pid
        self._fatal: Optional[str] = None
        self._dead: Optional[str] = None
        self._closed = False
        self._lock = threading.Lock()
        self._reap_lock = threading.Lock()
        self._futures: dict[int, Future] = {}
        self._ids = itertools.count()
        self._last_version = 0
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise
        self._outbox = _Outbox()
        self._reader = threading.Thread(target=self._read, name="rollout-reader", daemon=True)
        self._sender = threading.Thread(target=self._send, name="rollout-sender", daemon=True)
        self._reader.start()
        self._sender.start()
        atexit.register(self.close)
        logger.info("rollout process ready (pid %d, backend %s)", self.pid, cfg.rollout.backend)

    def _wait_ready(self) -> None:
        waited = 0.0
        while not self._conn.poll(0.5):
            waited += 0.5
            if not self.process.is_alive():
                raise RolloutPipelineError(self._death())
            if waited >= max(self.timeout_s, START_TIMEOUT_S):
                raise RolloutPipelineError(f"the rollout process (pid {self.pid}) did not start within "
                                           f"{max(self.timeout_s, START_TIMEOUT_S):.0f}s")
        msg = self._conn.recv()
        if msg[0] == "fatal":
            self._fatal = msg[1]
            raise RolloutPipelineError(self._death())

    # -- threads ---------------------------------------------------------------------------------------------
    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "fatal":
                self._fatal = msg[1]
                break
            with self._lock:
                fut = self._futures.pop(msg[1], None)
            if fut is None:
                continue
            if kind == "error":
                fut.set_exception(RolloutPipelineError(f"the rollout process failed a request:\n{msg[2]}"))
            else:  # result, synced
                fut.set_result(msg[2])
        self._fail_all(self._death())

    def _send(self) -> None:
        while True:
            msg = self._outbox.take()
            if msg is None:
                return
            try:
                self._conn.send(msg)
            except (OSError, ValueError):
                self._fail_all(self._death())
                return

    def _fail_all(self, why: str) -> None:
        with self._lock:
            self._dead = self._dead or why
            futures, self._futures = list(self._futures.values()), {}
        for fut in futures:
            if not fut.done():
                fut.set_exception(RolloutPipelineError(self._dead))

    def _death(self) -> str:
        if self._closed:
            return "the rollout process was closed"
        with self._reap_lock:  # two threads reaping at once: the loser's waitpid fails and reads "no exit code"
            self.process.join(timeout=2.0)
            code = self.process.exitcode
            deadline = time.monotonic() + 2.0
            while code is None and time.monotonic() < deadline:
                time.sleep(0.05)  # reaped by another thread (is_alive elsewhere) that has not yet stored the code
                code = self.process.exitcode
        if code is None:
            how = "it closed its pipe"
        elif code < 0:
            how = f"killed by {signal.Signals(-code).name}"
        else:
            how = f"exit code {code}"
        msg = f"the rollout process (pid {self.pid}) died ({how})"
        return msg + (f"; its error:\n{self._fatal}" if self._fatal else "")

    # -- requests --------------------------------------------------------------------------------------------
    def _request(self, kind: str, *args) -> Any:
        fut: Future = Future()
        with self._lock:
            if self._dead:
                raise RolloutPipelineError(self._dead)
            rid = next(self._ids)
            self._futures[rid] = fut
        self._outbox.put((kind, rid, *args))
        try:
            return fut.result(timeout=self.timeout_s)
        except FutureTimeout:
            with self._lock:
                self._futures.pop(rid, None)
            alive = "alive but not answering" if self.process.is_alive() else self._death()
            raise RolloutPipelineError(f"no answer to {kind!r} from the rollout process (pid {self.pid}) within "
                                       f"{self.timeout_s:.0f}s (rollout.async_timeout_s): {alive}") from None

    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingConfig,
                 seeds: Sequence[int] | None = None, progress: bool = False) -> RolloutOutput:
        return self._request("generate", list(prompts), sampling, None if seeds is None else list(seeds))

    def push_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        """Hand HF-named weights (copied now, so the caller may keep training) to the process as ``version``;
        returns without waiting. The next request, or the next chunk of a partial rollout, uses them."""
        if self._dead:
            raise RolloutPipelineError(self._dead)
        buf = io.BytesIO()
        torch.save({k: v.detach().to("cpu") for k, v in weights.items()}, buf)
        self._last_version = version
        self._outbox.put_weights(version, buf.getvalue())

    def wait_weights(self) -> int:
        """Block until every pushed weight update is loaded; returns the version the process holds."""
        return self._request("sync")

    def update_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Synchronous form (the ``RolloutBackend`` contract): push as the current version and wait."""
        self.push_weights(state_dict, self._last_version)
        self.wait_weights()

    def close(self) -> None:
        """Stop the process (a clean exit if it is idle, SIGKILL after 5 s otherwise); idempotent."""
        if self._closed:
            return
        outbox = getattr(self, "_outbox", None)
        if outbox is not None and self.process.is_alive():
            outbox.put(("close",))
            self.process.join(timeout=5.0)
        self._closed = True
        self._kill()
        if outbox is not None:
            outbox.close()
        self._fail_all("the rollout process was closed")
        self._conn.close()

    def _kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()  # SIGKILL also ends a stopped process
        self.process.join(timeout=10.0)
