"""The producer of an asynchronous run: a thread that collects scored batches ahead of the trainer into a bounded
queue, never from weights older than the staleness bound allows (``trainer.async_rl`` explains the versions).

    pipeline = RolloutPipeline(collect, data, rollout, max_staleness=k, timeout_s=600)
    pipeline.push_weights(0, policy)             # the weights the first batches are generated with
    pipeline.start(first_step=1, last_step=100)
    batch = pipeline.get(step)                   # trainer thread; RolloutPipelineError on failure or timeout
    pipeline.push_weights(step, policy)          # after the update: version ``step``
    pipeline.stop()

``collect(step, timer)`` is ``RLLoop.collect`` (generation through ``rollout`` and the reward service, dynamic
sampling included); ``rollout`` is a backend with ``push_weights(weights, version)`` that returns without waiting
for the engine (``ProcessRollout`` locally, ``RolloutGroup`` on Ray).
"""
from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from trainer.async_rl.errors import RolloutPipelineError
from trainer.experience import ScoredRollout

logger = logging.getLogger(__name__)
_POLL_S = 0.2


@dataclass
class Batch:
    """One step's scored rollouts with what the trainer needs to know about how they were made."""

    step: int
    scored: ScoredRollout
    stats: dict                 # RLLoop.collect's statistics (rewards, lengths, dynamic sampling)
    data_state: dict            # the data position after this batch's prompts (what a checkpoint records)
    seconds: dict = field(default_factory=dict)  # the producer's generate / reward / wait seconds for it


class RolloutPipeline:
    def __init__(self, collect: Callable[[int, Any], tuple[ScoredRollout, dict]], data, rollout, *,
                 max_staleness: int, timeout_s: float, timer_factory: Callable[[], Any]):
        if max_staleness < 1:
            raise ValueError(f"an asynchronous pipeline needs max_staleness >= 1, got {max_staleness}")
        self.collect, self.data, self.rollout = collect, data, rollout
        self.max_staleness, self.timeout_s, self.timer_factory = max_staleness, timeout_s, timer_factory
        self.queue: queue.Queue = queue.Queue(maxsize=max_staleness)
        self.pushed_version = -1
        self._versions = threading.Condition()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self.state = "not started"   # what the producer is doing (for error messages)
        self._state_since = time.monotonic()

    # -- trainer side ------------------------------------------------------------------------------------
    def push_weights(self, version: int, policy) -> None:
        """Hand the policy's weights of ``version`` to the rollout (returns once they are copied)."""
        if version <= self.pushed_version:
            return
        self.rollout.push_weights(policy.named_weights(), version)
        with self._versions:
            self.pushed_version = version
            self._versions.notify_all()

    def start(self, first_step: int, last_step: int) -> None:
        if self.pushed_version < 0:
            raise RuntimeError("push the initial weights before starting the pipeline")
        self._stop.clear()
        self._error = None
        self.queue = queue.Queue(maxsize=self.max_staleness)
        self._thread = threading.Thread(target=self._produce, args=(first_step, last_step), name="rollout-producer",
                                        daemon=True)
        self._thread.start()

    def get(self, step: int) -> Batch:
        """The batch of ``step`` (the producer makes them in step order). Raises ``RolloutPipelineError`` when the
        producer failed, or when no batch arrives within ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                item = self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RolloutPipelineError(
                        f"no rollout batch for step {step} within {self.timeout_s:.0f}s (rollout.async_timeout_s); "
                        f"the producer is {self.state} for {time.monotonic() - self._state_since:.0f}s") from None
                if self._thread is None or not self._thread.is_alive():
                    if self._error is not None:
                        raise self._wrap(self._error)
                    raise RolloutPipelineError(f"the rollout producer stopped before step {step} ({self.state})")
                continue
            if isinstance(item, BaseException):
                raise self._wrap(item)
            if item.step != step:
                raise RolloutPipelineError(f"the producer delivered step {item.step} where step {step} was due")
            return item

    def stop(self) -> None:
        """Stop producing (a batch being generated is finished or abandoned; queued batches are dropped)."""
        self._stop.set()
        with self._versions:
            self._versions.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                logger.warning("the rollout producer is still busy (%s); it ends with the rollout", self.state)
        self._thread = None

    @staticmethod
    def _wrap(e: BaseException) -> RolloutPipelineError:
        if isinstance(e, RolloutPipelineError):
            return e
        err = RolloutPipelineError(f"the rollout producer failed: {type(e).__name__}: {e}")
        err.__cause__ = e
        return err

    # -- producer thread -----------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state, self._state_since = state, time.monotonic()

    def _produce(self, first_step: int, last_step: int) -> None:
        try:
            for step in range(first_step, last_step + 1):
                need = step - 1 - self.max_staleness  # the oldest version step ``step`` may be generated by
                t0 = time.monotonic()
                self._set_state(f"waiting for weights version {need} (pushed: {self.pushed_version})")
                with self._versions:
                    while self.pushed_version < need and not self._stop.is_set():
                        self._versions.wait(_POLL_S)
                waited = time.monotonic() - t0
                if self._stop.is_set():
                    return
                self._set_state(f"generating and scoring step {step}")
                timer = self.timer_factory()
                scored, stats = self.collect(step, timer)
                batch = Batch(step, scored, stats, copy.deepcopy(self.data.state_dict()),
                              {**timer.seconds, "producer_wait": waited})
                self._set_state(f"waiting to queue step {step}")
                if not self._put(batch):
                    return
            self._set_state("done")
        except BaseException as e:  # handed to the trainer thread, which raises it at its next get()
            if not self._stop.is_set():
                logger.error("rollout producer failed: %s: %s", type(e).__name__, e)
                self._error = e
                self._put(e)
            self._set_state(f"failed ({type(e).__name__})")

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False
