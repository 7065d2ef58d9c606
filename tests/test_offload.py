"""The request thread's step runner and the body budget: order, results, errors, waiting (no server needed)."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from reward_service.guard import BodyBudget
from reward_service.offload import StepRunner


def job(name: str, steps: int, log: list, result=None):
    for i in range(steps):
        log.append((name, i, threading.current_thread().name))
        yield
    return result if result is not None else name


def test_a_short_job_is_not_stuck_behind_a_long_one():
    """Least attained service: a job that arrives later runs its steps before the long job's next ones."""
    log: list = []

    async def main():
        runner = StepRunner()
        long = asyncio.create_task(runner.run(job("long", 50, log)))
        while len(log) < 5:  # the long job is under way
            await asyncio.sleep(0.001)
        short = await runner.run(job("short", 3, log))
        assert not long.done()
        out = await long
        runner.close()
        return short, out

    assert asyncio.run(main()) == ("short", "long")
    names = [n for n, _, _ in log]
    first, last = names.index("short"), len(names) - 1 - names[::-1].index("short")
    assert names[first:last + 1].count("long") <= 2  # at most one long step between two short ones (FIFO: 45)
    assert {t for _, _, t in log} == {"request-cpu"}  # never on the event loop's thread


def test_equal_jobs_interleave_and_errors_reach_their_caller():
    log: list = []

    def failing():
        yield
        raise ValueError("bad request")

    async def main():
        runner = StepRunner()
        results = await asyncio.gather(runner.run(job("a", 3, log)), runner.run(job("b", 3, log)),
                                       runner.run(failing()), return_exceptions=True)
        runner.close()
        return results

    a, b, err = asyncio.run(main())
    assert (a, b) == ("a", "b") and isinstance(err, ValueError) and str(err) == "bad request"
    assert [n for n, _, _ in log] == ["a", "b", "a", "b", "a", "b"]  # round robin


def test_body_budget_first_fit_and_timeout():
    async def main():
        b = BodyBudget(100)
        assert await b.acquire(60, time.monotonic() + 1)
        waiting = asyncio.create_task(b.acquire(50, time.monotonic() + 5))  # does not fit yet
        await asyncio.sleep(0.01)
        assert not waiting.done() and await b.acquire(30, time.monotonic() + 1)  # a smaller one fits: first fit
        assert not await b.acquire(20, time.monotonic() + 0.05)  # times out: refused
        b.release(60)
        assert await waiting and b.used == 80
        b.release(30)
        b.release(50)
        return b

    b = asyncio.run(main())
    assert (b.used, b.peak, b.waits, b.refused) == (0, 90, 2, 1)
