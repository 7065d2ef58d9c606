"""Thin adapters that let other trainers use the reward service.

TRL (``GRPOTrainer(reward_funcs=[...])``)::

    from reward_service.adapters import TRLReward
    reward = TRLReward("http://127.0.0.1:8000", gold_column="answer", scheme="correctness")
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=ds)   # ds has "prompt" and "answer"

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with every other dataset
column as a keyword list; completions are strings, or (conversational datasets) lists of message dicts whose
assistant ``content`` is graded.

verl (``custom_reward_function.path=<site-packages>/reward_service/adapters.py``, ``name=compute_score``; set
``MATHRL_REWARD_URL``, optionally ``MATHRL_REWARD_SCHEME`` and ``MATHRL_REWARD_TOKEN``)::

    compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float
    compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None) -> list[float]
      (for verl's BatchRewardManager: ``reward_model.reward_manager=batch``, ``name=compute_score_batch``)

Both raise ``RewardServiceUnavailable`` when the service cannot be reached: a failed reward is never 0.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Optional, Sequence

from reward_service.client import RewardClient, ScoreResult

DEFAULT_URL = "http://127.0.0.1:8000"
GOLD_COLUMNS = ("answer", "gold", "ground_truth", "solution", "label", "final_answer")


def completion_text(completion: Any) -> str:
    """The text to grade: a string as is; for a conversation, the assistant messages' contents joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return _content(completion.get("content"))
    if isinstance(completion, (list, tuple)):
        msgs = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in msgs if m.get("role", "assistant") == "assistant"]
        return "\n".join(_content(m.get("content")) for m in (assistant or msgs))
    raise TypeError(f"cannot grade a completion of type {type(completion).__name__}")


def _content(c: Any) -> str:
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    if isinstance(c, list):  # multimodal content parts: keep the text parts
        return "".join(p.get("text", "") for p in c if isinstance(p, dict) and p.get("type", "text") == "text")
    return str(c)


class TRLReward:
    """A TRL ``reward_funcs`` entry backed by the reward service (returns one float per completion)."""

    def __init__(self, url: Optional[str] = None, *, gold_column: Optional[str] = None, scheme: Optional[str] = None,
                 token: Optional[str] = None, name: Optional[str] = None, log_metrics: bool = True, **client_kw):
        self.url = url or os.environ.get("MATHRL_REWARD_URL", DEFAULT_URL)
        self.gold_column = gold_column
        self.scheme = scheme
        self.log_metrics = log_metrics
        self.__name__ = name or f"math_reward_{scheme or 'default'}"  # TRL logs rewards under this name
        self._client_kw = dict(token=token or os.environ.get("MATHRL_REWARD_TOKEN"), **client_kw)
        self._client: Optional[RewardClient] = None

    @property
    def client(self) -> RewardClient:
        if self._client is None:
            self._client = RewardClient(self.url, **self._client_kw)
        return self._client

    def _golds(self, kwargs: dict, n: int) -> list:
        col = self.gold_column or next((c for c in GOLD_COLUMNS if c in kwargs), None)
        if col is None or col not in kwargs:
            raise KeyError(f"no gold-answer column among the dataset columns {sorted(kwargs)}; "
                           f"pass gold_column=... (tried {GOLD_COLUMNS if self.gold_column is None else col})")
        golds = list(kwargs[col])
        if len(golds) != n:
            raise ValueError(f"column {col!r} has {len(golds)} values for {n} completions")
        return golds

    def __call__(self, prompts: Sequence[Any] = (), completions: Sequence[Any] = (), **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions]
        results: list[ScoreResult] = self.client.score(texts, self._golds(kwargs, len(texts)), scheme=self.scheme)
        log_metric = kwargs.get("log_metric")
        if self.log_metrics and callable(log_metric) and results:
            n = len(results)
            log_metric(f"{self.__name__}/accuracy", sum(r.verdict == "correct" for r in results) / n)
            log_metric(f"{self.__name__}/no_answer", sum(r.verdict == "no_answer" for r in results) / n)
        return [r.reward for r in results]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __getstate__(self) -> dict:  # picklable (e.g. sent to other processes): the HTTP client is re-made there
        state = dict(self.__dict__)
        state["_client"] = None
        return state


# ----------------------------------------------------------------------------------------------- verl

_verl_local = threading.local()


def _verl_client() -> RewardClient:
    """One client per thread and (url, token), read from the environment at call time."""
    key = (os.environ.get("MATHRL_REWARD_URL", DEFAULT_URL), os.environ.get("MATHRL_REWARD_TOKEN"))
    clients = getattr(_verl_local, "clients", None)
    if clients is None:
        clients = _verl_local.clients = {}
    if key not in clients:
        clients[key] = RewardClient(key[0], token=key[1])
    return clients[key]


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Optional[dict] = None,
                  **kwargs) -> float:
    """verl's per-sample reward function, scored by the service (``MATHRL_REWARD_URL``)."""
    scheme = (extra_info or {}).get("reward_scheme") or os.environ.get("MATHRL_REWARD_SCHEME") or None
    return _verl_client().score([solution_str], [ground_truth], scheme=scheme)[0].reward


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Optional[Sequence[Optional[dict]]] = None, **kwargs) -> list[float]:
    """verl's batched reward function (BatchRewardManager): one HTTP request per batch."""
    scheme = os.environ.get("MATHRL_REWARD_SCHEME") or None
    schemes = None
    if extra_infos is not None:
        per = [(e or {}).get("reward_scheme") for e in extra_infos]
        schemes = per if any(per) else None
    return [r.reward for r in _verl_client().score(list(solution_strs), list(ground_truths), scheme=scheme,
                                                   schemes=schemes)]
