"""The killable grading pool, with real spawned processes and a scripted grader (tests/reward_service_fakes.py)."""
from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from reward_service.pool import ERROR, GradeItem, GraderError, GradingPool, GradingPoolError

FAKE = "reward_service_fakes:scripted_grade"
LIMIT = 0.5  # per-item time limit used here (seconds)


@pytest.fixture(scope="module")
def pool():
    with GradingPool(workers=2, timeout=LIMIT, grader=FAKE, warmup=False) as p:
        assert p.wait_ready(60)
        yield p


def boxed(i):
    return (f"step {i} ... so \\boxed{{{i}}}", str(i))


def test_order_preserved_and_verdicts(pool):
    items = [boxed(i) for i in range(300)] + [("no answer here", "1"), ("\\boxed{7}", "8")]
    grades = pool.grade_many(items)
    assert [g.answer for g in grades[:300]] == [str(i) for i in range(300)]
    assert all(g.verdict == "correct" and g.method == "boxed" for g in grades[:300])
    assert grades[300].verdict == "no_answer" and grades[300].answer is None
    assert grades[301].verdict == "wrong" and grades[301].answer == "7"


def test_big_items_mixed_with_small_ones(pool):
    items = [(("filler " * 4000 if i % 5 == 0 else "") + f"\\boxed{{{i}}}", str(i)) for i in range(60)]
    grades = pool.grade_many(items, timeout=60)  # 28 KB items travel alone, never as a prefetched chunk
    assert [g.answer for g in grades] == [str(i) for i in range(60)]


def test_item_forms_and_fallback_flag(pool):
    grades = pool.grade_many([
        GradeItem("the total is 42", 42, True),
        {"completion": "the total is 42", "gold": 42},
        ("the total is 42", 42, True),
    ])
    assert [g.verdict for g in grades] == ["correct", "no_answer", "correct"]
    with pytest.raises(TypeError):
        pool.submit([42])


@pytest.mark.parametrize("marker", ["HANG", "SPIN"])
def test_timeout_kills_only_the_stuck_item(pool, marker):
    before = pool.stats.timeouts
    items = [boxed(i) for i in range(40)]
    items[17] = (f"{marker} \\boxed{{17}}", "17")
    t0 = time.monotonic()
    grades = pool.grade_many(items, timeout=30)
    elapsed = time.monotonic() - t0
    assert grades[17].verdict == "wrong" and grades[17].reason == "timeout" and grades.retries[17] == 1
    assert all(g.verdict == "correct" for i, g in enumerate(grades) if i != 17)
    assert pool.stats.timeouts == before + 1
    assert 2 * LIMIT <= elapsed < 2 * LIMIT + 5  # killed near the limit twice, not after it would have finished
    assert pool.grade_many([boxed(1)])[0].verdict == "correct"  # the replacement worker works


def test_several_stuck_items_in_one_batch(pool):
    items = [boxed(i) for i in range(30)]
    for j in (3, 4, 20):
        items[j] = (f"HANG {j}", str(j))
    grades = pool.grade_many(items, timeout=30)
    assert [i for i, g in enumerate(grades) if g.reason == "timeout"] == [3, 4, 20]
    assert sum(g.verdict == "correct" for g in grades) == 27


def test_grader_exception_is_an_error_not_a_verdict(pool):
    with pytest.raises(GraderError) as e:
        pool.grade_many([boxed(1), ("RAISE", "1"), boxed(2)])
    assert e.value.failures == [(1, "grader error: ArithmeticError: scripted failure")]
    assert "item 1" in str(e.value)
    g = pool.grade_many([("RAISE", "1"), boxed(2)], on_error="return")
    assert g[0].verdict == ERROR and g[1].verdict == "correct"
    assert pool.grade_many([("RAISE", "1")] * 2, on_error="return")[0].verdict == ERROR  # errors are not cached


def test_invalid_input_is_reported_as_such(pool):
    from reward_service.pool import INVALID, InvalidItemError

    with pytest.raises(InvalidItemError) as e:
        pool.grade_many([boxed(1), ("BADGOLD", "1")])
    assert e.value.failures == [(1, "scripted: gold rejected")] and isinstance(e.value, ValueError)
    assert pool.grade_many([("BADGOLD", "1")], on_error="return")[0].verdict == INVALID


def test_crashing_item_is_retried_once(pool, tmp_path):
    flag = tmp_path / "died"
    before = pool.stats.retries
    grades = pool.grade_many([boxed(1), (f"DIE_ONCE:{flag} \\boxed{{5}}", "5"), boxed(3)], timeout=60)
    assert flag.exists()  # it really died once
    assert [g.verdict for g in grades] == ["correct", "correct", "correct"]
    assert pool.stats.retries == before + 1


def test_item_that_always_kills_its_worker(pool):
    grades = pool.grade_many([boxed(1), ("DIE", "1"), boxed(2)], timeout=60)
    assert grades[1].verdict == "wrong" and grades[1].reason.startswith("crash:")
    assert grades[0].verdict == grades[2].verdict == "correct"


def test_worker_killed_from_outside_mid_batch(pool):
    deadline = time.monotonic() + 30
    while pool.ready_workers < 2 and time.monotonic() < deadline:  # replacements from earlier tests
        time.sleep(0.05)
    items = [(f"NAP {i} \\boxed{{{i}}}", str(i)) for i in range(40)]  # ~1 s of work on 2 workers
    fut = pool.submit(items)
    time.sleep(0.3)
    pids = pool.worker_pids()
    assert pids
    os.kill(pids[0], signal.SIGKILL)
    grades = fut.result(timeout=60)
    assert [g.answer for g in grades] == [str(i) for i in range(40)]
    assert all(g.verdict == "correct" for g in grades)
    assert pids[0] not in pool.worker_pids()


def test_cache_answers_repeats_without_a_worker(pool):
    items = [("cache me \\boxed{9}", "9"), ("cache me \\boxed{9}", 9)]
    pool.grade_many(items)
    hits = pool.stats.cache_hits
    grades = pool.grade_many(items)
    assert pool.stats.cache_hits == hits + 2
    assert [g.verdict for g in grades] == ["correct", "correct"]


def test_concurrent_callers_and_asyncio(pool):
    out = {}

    def caller(k):
        out[k] = pool.grade_many([(f"t{k} \\boxed{{{j}}}", str(j)) for j in range(50)])

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()

    async def main():
        return await asyncio.gather(*(pool.agrade_many([(f"a{k} \\boxed{{{k}}}", str(k))]) for k in range(20)))

    async_results = asyncio.run(main())
    for t in threads:
        t.join(60)
    assert all(len(v) == 50 and all(g.verdict == "correct" for g in v) for v in out.values()) and len(out) == 8
    assert [r[0].answer for r in async_results] == [str(k) for k in range(20)]


def test_empty_batch(pool):
    assert pool.grade_many([]) == []


def test_grader_that_cannot_start_fails_loudly():
    with GradingPool(workers=1, timeout=1.0, grader="reward_service_fakes_missing:grade") as p:
        assert not p.wait_ready(60)
        assert "No module named" in (p.broken or "")
        with pytest.raises(GradingPoolError):
            p.grade_many([("x", "1")])


def test_close_fails_pending_batches():
    p = GradingPool(workers=1, timeout=30.0, grader=FAKE, warmup=False)
    assert p.wait_ready(60)
    fut = p.submit([("HANG", "1")])
    time.sleep(0.2)
    p.close()
    with pytest.raises(GradingPoolError):
        fut.result(timeout=10)
    with pytest.raises(GradingPoolError):
        p.submit([("x", "1")])


def test_spawn_start_method_also_works():
    with GradingPool(workers=1, timeout=LIMIT, grader=FAKE, warmup=False, start_method="spawn") as p:
        assert p.start_method == "spawn"
        grades = p.grade_many([boxed(1), ("HANG", "2"), boxed(3)], timeout=60)
        assert [g.verdict for g in grades] == ["correct", "wrong", "correct"] and grades[1].reason == "timeout"
    with pytest.raises(ValueError):
        GradingPool(workers=1, start_method="fork")


def test_a_small_batch_is_not_stuck_behind_a_large_one(pool):
    """Regression: one FIFO queue made a 1-item request wait for every item queued before it."""
    big = pool.submit([(f"NAP big {i} \\boxed{{{i}}}", str(i)) for i in range(120)])  # ~3 s on 2 workers
    time.sleep(0.2)
    small = pool.submit([("small \\boxed{1}", "1")])
    assert small.result(timeout=60)[0].verdict == "correct"
    assert not big.done()  # the small one went ahead; the big one is still being graded
    assert [g.answer for g in big.result(timeout=60)] == [str(i) for i in range(120)]


def test_hung_worker_is_not_the_items_fault(pool):
    """Regression: a stopped (SIGSTOP) worker turned correct items into wrong/timeout."""
    deadline = time.monotonic() + 30
    while pool.ready_workers < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    before = (pool.stats.timeouts, pool.stats.timeout_retries)
    fut = pool.submit([(f"NAP stop {i} \\boxed{{{i}}}", str(i)) for i in range(40)])
    time.sleep(0.2)
    os.kill(pool.worker_pids()[0], signal.SIGSTOP)  # the pool kills it at the limit (SIGKILL works on it)
    grades = fut.result(timeout=60)
    assert all(g.verdict == "correct" for g in grades) and [g.answer for g in grades] == [str(i) for i in range(40)]
    assert sum(grades.retries) == 1 and set(grades.retries) == {0, 1}  # the item it was on ran again, elsewhere
    assert (pool.stats.timeouts, pool.stats.timeout_retries) == (before[0], before[1] + 1)


def test_an_item_over_the_limit_twice_is_a_timeout(pool):
    t0 = time.monotonic()
    grades = pool.grade_many([boxed(1), ("HANG twice", "2")], timeout=30)
    assert grades[1].reason == "timeout" and grades.retries == [0, 1]
    assert time.monotonic() - t0 >= 2 * LIMIT  # it ran on two workers


def test_pool_heals_after_failed_starts(tmp_path, monkeypatch):
    """Regression: three failed starts in a row left the pool "broken" for good (503 forever)."""
    flag = tmp_path / "fail-start"
    monkeypatch.setenv("MATHRL_FAKE_FAIL_START", str(flag))  # spawned workers see it
    with GradingPool(workers=1, timeout=LIMIT, grader="reward_service_fakes:flaky_start_grade", warmup=False,
                     start_method="spawn", restart_backoff_max=0.5) as p:
        assert p.wait_ready(60) and p.state == "ok"
        flag.touch()  # from now on no worker can start
        os.kill(p.worker_pids()[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while p.state != "unavailable" and time.monotonic() < deadline:
            time.sleep(0.05)
        h = p.health()
        assert h["status"] == "unavailable" and h["workers_ready"] == 0 and h["failed_starts_in_a_row"] >= 3
        assert "scripted start failure" in h["last_start_error"]
        with pytest.raises(GradingPoolError, match="no grading worker can start"):
            p.grade_many([boxed(1)])  # fails at once, does not hang
        flag.unlink()  # the cause goes away: the pool starts a worker by itself (backoff at most 0.5 s)
        deadline = time.monotonic() + 60
        while p.state != "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.state == "ok" and p.health()["failed_starts_in_a_row"] == 0
        assert p.grade_many([boxed(1)])[0].verdict == "correct"
