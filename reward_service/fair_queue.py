"""The grading pool's queue: items of many batches, the batch with the fewest items left first.

One FIFO queue made a 1-item request wait behind every 256-item batch queued before it (~15 s with 200
clients). Here each batch has its own lane, and the next item comes from the lane with the fewest items still
queued (ties: the lane that arrived first) - shortest remaining work first. So:

* a small request is served next: a 1-item request waits for at most the chunks already in flight on the
  workers, however many large batches are queued;
* a batch that has started keeps going (its remainder only shrinks) and batches of equal size finish one after
  the other, in arrival order: none of them is slowed down by sharing the workers with the others, and the mean
  time to finish is the least any order gives;
* a batch alone is taken in order, exactly as before.

Items given back by a worker that died or was killed (``push_front``) come before everything else, in order.
``alive(item)`` is False for items of batches nobody waits for any more (a cancelled request): such a lane is
dropped whole when it reaches the front.
Not thread-safe: the pool holds its lock around every call.
"""
from __future__ import annotations

import collections
import heapq
import itertools
from typing import Any, Callable, Iterable, Optional


class _Lane:
    __slots__ = ("tasks", "seq")

    def __init__(self, tasks: Iterable[Any], seq: int):
        self.tasks: collections.deque = collections.deque(tasks)
        self.seq = seq


class FairQueue:
    def __init__(self, alive: Callable[[Any], bool] = lambda task: True):
        self._alive = alive
        self._front: collections.deque = collections.deque()
        self._heap: list[tuple[int, int, _Lane]] = []  # (items left, arrival, lane); one per non-empty lane
        self._seq = itertools.count()
        self._len = 0

    def __len__(self) -> int:
        """Queued items (items of cancelled batches included until they reach the front)."""
        return self._len

    def push_batch(self, tasks: Iterable[Any]) -> None:
        """Queue one batch's items as a new lane (in order)."""
        lane = _Lane(tasks, next(self._seq))
        if lane.tasks:
            self._len += len(lane.tasks)
            heapq.heappush(self._heap, (len(lane.tasks), lane.seq, lane))

    def push_front(self, tasks: Iterable[Any]) -> None:
        """Give items back (a worker died with them): they come next, in the given order."""
        tasks = list(tasks)
        self._front.extendleft(reversed(tasks))
        self._len += len(tasks)

    def peek(self) -> Optional[Any]:
        """The item ``pop`` would return, or None when the queue is empty."""
        self._drop_dead()
        if self._front:
            return self._front[0]
        return self._heap[0][2].tasks[0] if self._heap else None

    def pop(self) -> Optional[Any]:
        self._drop_dead()
        if self._front:
            self._len -= 1
            return self._front.popleft()
        if not self._heap:
            return None
        _, seq, lane = self._heap[0]
        task = lane.tasks.popleft()
        self._len -= 1
        if lane.tasks:
            heapq.heapreplace(self._heap, (len(lane.tasks), seq, lane))  # fewer left: it stays at the top
        else:
            heapq.heappop(self._heap)
        return task

    def drain(self) -> list:
        """Remove and return every queued item."""
        out = list(self._front)
        self._front.clear()
        for _, _, lane in self._heap:
            out.extend(lane.tasks)
        self._heap.clear()
        self._len = 0
        return out

    def _drop_dead(self) -> None:
        while self._front and not self._alive(self._front[0]):
            self._front.popleft()
            self._len -= 1
        while self._heap and not self._alive(self._heap[0][2].tasks[0]):
            lane = heapq.heappop(self._heap)[2]  # a lane is one batch: all its items are dead
            self._len -= len(lane.tasks)
            lane.tasks.clear()
