"""The grading pool's fair queue: least-attained-service order across batches (hand-worked orders)."""
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


def test_a_new_batch_goes_first_then_batches_share():
    q = FairQueue()
    q.push_batch([f"big{i}" for i in range(6)])
    assert [q.pop(), q.pop(), q.pop()] == ["big0", "big1", "big2"]  # big has had 3
    q.push_batch(["small0"])  # has had 0: next
    q.push_batch(["mid0", "mid1", "mid2", "mid3"])  # has had 0, arrived after small
    # small0 (0 taken), mid0 (0), mid1 (1), mid2 (2), then big3 and mid3 tie at 3: big arrived first
    assert pop_all(q) == ["small0", "mid0", "mid1", "mid2", "big3", "mid3", "big4", "big5"]


def test_equal_batches_round_robin():
    q = FairQueue()
    for name in "abc":
        q.push_batch([f"{name}{i}" for i in range(2)])
    assert pop_all(q) == ["a0", "b0", "c0", "a1", "b1", "c1"]


def test_given_back_items_come_first_in_order():
    q = FairQueue()
    q.push_batch(["a0", "a1"])
    q.push_batch(["b0"])
    q.push_front(["x1", "x2"])
    q.push_front(["x0"])
    assert len(q) == 6
    assert pop_all(q) == ["x0", "x1", "x2", "a0", "b0", "a1"]


def test_dead_batches_are_dropped_whole():
    cancelled = {"b"}
    q = FairQueue(alive=lambda t: t[0] not in cancelled)
    q.push_batch(["a0", "a1"])
    q.push_batch(["b0", "b1", "b2"])
    q.push_front(["b9"])
    assert q.peek() == "a0" and len(q) == 5  # b9 dropped on the way; lane b when it comes to the front
    assert pop_all(q) == ["a0", "a1"] and len(q) == 0


def test_drain_and_empty_batches():
    q = FairQueue()
    q.push_batch([])
    assert len(q) == 0 and q.pop() is None
    q.push_batch(["a0", "a1"])
    q.push_front(["x"])
    assert sorted(q.drain()) == ["a0", "a1", "x"] and len(q) == 0 and q.pop() is None
