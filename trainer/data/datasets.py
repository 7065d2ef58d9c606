"""Resumable batches of prompt records for the RL loop and SFT (records are read by ``mathrl_core.records``)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from mathrl_core.records import PromptRecord


class PromptDataset:
    """Deterministic, resumable batches of records.

    Epoch ``e`` visits the records in ``permutation(seed, e)`` order (or file order with ``shuffle=False``);
    batches never straddle epochs (with ``drop_last`` the incomplete tail of an epoch is skipped). The
    iterator is endless: the training loop decides how many steps to take. ``state_dict()`` holds the epoch
    and the position within it, so a resumed run gets exactly the batches an uninterrupted one would.
    """

    def __init__(self, records: Sequence[PromptRecord], batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if not records:
            raise ValueError("PromptDataset needs at least one record")
        if drop_last and batch_size > len(records):
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({len(records)} records)")
        self.records = list(records)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0
        self._order_epoch, self._order = -1, None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def batches_per_epoch(self) -> int:
        n, b = len(self.records), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """Record indices in the order epoch ``epoch`` visits them."""
        if self._order_epoch != epoch:
            n = len(self.records)
            self._order = (np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle
                           else np.arange(n))
            self._order_epoch = epoch
        return self._order

    def next_batch(self) -> list[PromptRecord]:
        n = len(self.records)
        if self.position >= n or (self.drop_last and self.position + self.batch_size > n):
            self.epoch += 1
            self.position = 0
        idx = self.order(self.epoch)[self.position:self.position + self.batch_size]
        self.position += len(idx)
        return [self.records[i] for i in idx]

    def __iter__(self) -> Iterator[list[PromptRecord]]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "num_records": len(self.records), "batch_size": self.batch_size, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict) -> None:
        for key in ("num_records", "seed", "shuffle"):
            mine = len(self.records) if key == "num_records" else getattr(self, key)
            if key in state and state[key] != mine:
                raise ValueError(f"cannot resume the data position: checkpoint has {key}={state[key]}, "
                                 f"this dataset has {mine}")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
