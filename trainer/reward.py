"""Rewards for the RL loop: one batched HTTP call per step to the reward service.

With ``reward.url`` unset the service is started on a free loopback port (the same HTTP path a remote
deployment uses) and stopped at exit. A service that stays down raises ``RewardServiceUnavailable`` after the
client's retries: the loop lets it propagate, so the run stops with its last checkpoint intact; a failure is
never turned into a reward.
"""
from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

from reward_service.client import RewardClient, ScoreResult, start_service
from trainer.config import RewardConfig

logger = logging.getLogger(__name__)


@dataclass
class ScoredBatch:
    rewards: list[float]
    verdicts: list[str]
    answers: list[str | None]
    timed_out: list[bool]   # over the grading time limit on two workers: no verdict (an infrastructure fault)
    retries: list[int]      # re-run on a fresh worker after a hang or a crash (a verdict all the same)

    @classmethod
    def from_results(cls, results: Sequence[ScoreResult]) -> "ScoredBatch":
        return cls([r.reward for r in results], [r.verdict for r in results], [r.answer for r in results],
                   [r.timed_out for r in results], [r.retries for r in results])


class RewardScorer:
    def __init__(self, cfg: RewardConfig):
        self.cfg = cfg
        self.service = None
        url = cfg.url
        token = cfg.token or os.environ.get("REWARD_SERVICE_TOKEN")
        if not url:
            self.service = start_service(workers=cfg.workers, timeout=cfg.grading_timeout_s, token=token)
            atexit.register(self.close)
            url = self.service.url
            logger.info("started a local reward service at %s", url)
        self.url = url
        self.token = token
        self.client = RewardClient(url, token=token, timeout=cfg.timeout_s, retries=cfg.retries, scheme=cfg.scheme)

    def score(self, completions: Sequence[str], golds: Sequence[Any]) -> ScoredBatch:
        """Rewards, verdicts and extracted answers, in input order (one request, chunked only if huge)."""
        return ScoredBatch.from_results(self.client.score(list(completions), list(golds), scheme=self.cfg.scheme))

    def close(self) -> None:
        self.client.close()
        if self.service is not None:
            self.service.stop()
            self.service = None
