"""The requests' own CPU work (parsing, validation, prompt splitting, rewards, JSON), off the event loop, fairly.

Each piece of work is a generator that yields between small steps (a few milliseconds: a window of the body,
a few hundred items). ``StepRunner`` runs the steps on one thread of its own, one at a time, always taking
the waiting step of the job that has had the fewest steps so far (ties: the oldest job): least attained
service (a job's remaining steps are not known in advance). So a new request's first step runs next, and
between two of its steps usually one step of a longer job runs (while the event loop hands its next step
over): a 1-item request never waits behind a whole 16384-item batch, nor behind one step of each of 200
requests (as a FIFO of steps would make it). The event loop (``/health``,
accepting connections, sending replies) only waits for the GIL between two short C calls (the app lowers the
interpreter's switch interval).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from typing import Any, Generator


class StepRunner:
    def __init__(self, name: str = "request-cpu"):
        self._heap: list = []  # (steps done, job number, generator, loop, future)
        self._cv = threading.Condition()
        self._jobs = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def run(self, gen: Generator) -> Any:
        """Run ``gen`` to completion, one step at a time on the runner's thread; return its return value."""
        loop = asyncio.get_running_loop()
        job = next(self._jobs)
        steps = 0
        while True:
            fut = loop.create_future()
            with self._cv:
                if self._closed:
                    raise RuntimeError("the request runner is closed")
                heapq.heappush(self._heap, (steps, job, gen, loop, fut))
                self._cv.notify()
            done, value = await fut
            if done:
                return value
            steps += 1

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._heap and not self._closed:
                    self._cv.wait()
                if self._closed:
                    pending, self._heap = self._heap, []
                    for *_, loop, fut in pending:
                        loop.call_soon_threadsafe(_cancel, fut)
                    return
                _, _, gen, loop, fut = heapq.heappop(self._heap)
            if fut.cancelled():  # the request was cancelled while its step waited
                continue
            try:
                next(gen)
                result: tuple = (False, None)
            except StopIteration as e:
                result = (True, e.value)
            except BaseException as e:  # noqa: BLE001 - handed to the request
                loop.call_soon_threadsafe(_set_exception, fut, e)
                continue
            loop.call_soon_threadsafe(_set_result, fut, result)


def _set_result(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _cancel(fut: asyncio.Future) -> None:
    fut.cancel()
