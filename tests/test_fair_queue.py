"""The grading pool's fair queue: the batch with the fewest items left first (hand-worked orders)."""
from __future__ import annotations

from reward_service.fair_queue import FairQueue


def pop_all(q):
    out = []
    while (t := q.pop()) is not None:
        out.append(t)
    return out


def test_one_batch_is_taken_in_order():
    q = FairQueue()
    q.push_batch(["a0", "a1", "a2"])
    assert len(q) == 3 and q.peek() == "a0"
    assert pop_all(q) == ["a0", "a1", "a2"] and len(q) == 0 and q.peek() is None


def test_fewest_items_left_first():
    q = FairQueue()
    q.push_batch([f"big{i}" for i in range(6)])
    assert [q.pop(), q.pop(), q.pop()] == ["big0", "big1", "big2"]  # big has 3 left
    q.push_batch(["small0"])  # 1 left: next
    q.push_batch(["mid0", "mid1", "mid2", "mid3"])  # 4 left: after big's 3
    assert pop_all(q) == ["small0", "big3", "big4", "big5", "mid0", "mid1", "mid2", "mid3"]


def test_equal_batches_finish_in_arrival_order():
    q = FairQueue()
    for name in "abc":
        q.push_batch([f"{name}{i}" for i in range(2)])
    assert pop_all(q) == ["a0", "a1", "b0", "b1", "c0", "c1"]  # a started: its remainder is the smallest


def test_given_back_items_come_first_in_order():
    q = FairQueue()
    q.push_batch(["a0", "a1"])
    q.push_batch(["b0"])
    q.push_front(["x1", "x2"])
    q.push_front(["x0"])
    assert len(q) == 6
    assert pop_all(q) == ["x0", "x1", "x2", "b0", "a0", "a1"]


def test_dead_batches_are_dropped_whole():
    cancelled = {"b"}
    q = FairQueue(alive=lambda t: t[0] not in cancelled)
    q.push_batch(["a0", "a1", "a2"])
    q.push_batch(["b0", "b1"])
    q.push_front(["b9"])
    assert q.peek() == "a0" and len(q) == 3  # b9 dropped; lane b (2 left: first) dropped whole on the way
    assert pop_all(q) == ["a0", "a1", "a2"] and len(q) == 0


def test_drain_and_empty_batches():
    q = FairQueue()
    q.push_batch([])
    assert len(q) == 0 and q.pop() is None
    q.push_batch(["a0", "a1"])
    q.push_front(["x"])
    assert sorted(q.drain()) == ["a0", "a1", "x"] and len(q) == 0 and q.pop() is None
