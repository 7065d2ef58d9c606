"""Thin adapters that let other trainers use the reward service.

TRL (``GRPOTrainer(reward_funcs=[...])``)::

    from reward_service.adapters import TRLReward
    reward = TRLReward("http://127.0.0.1:8000", gold_column="answer", scheme="correctness")
    trainer = GRPOTrainer(model=..., reward_funcs=[reward], train_dataset=ds)   # ds has "prompt" and "answer"

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with every other dataset
column as a keyword list; completions are strings, or (conversational datasets) lists of message dicts whose
assistant ``content`` is graded.

verl (``custom_reward_function.path=<site-packages>/reward_service/adapters.py`` and ``.name=``; set
``MATHRL_REWARD_URL``, optionally ``MATHRL_REWARD_SCHEME`` and ``MATHRL_REWARD_TOKEN``). verl calls the
function by keyword; which one to name depends on the reward manager that calls it (docs/deploy.md)::

    compute_score(data_source, solution_str, ground_truth, extra_info=None) -> float
        one sample, one request: any verl (NaiveRewardManager, legacy or reward loop)
    compute_score_async(data_source, solution_str, ground_truth, extra_info=None) -> float   (a coroutine)
        verl >= 0.7's reward loop awaits it once per sample; the calls made concurrently on one event loop
        are sent as one batched request (MATHRL_REWARD_BATCH_WINDOW seconds, default 0.05)
    compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None) -> list[float]
        the legacy BatchRewardManager (verl < 0.7, and 0.7.0 with reward_model.use_reward_loop=False):
        one request per batch

Ground truths may be numpy scalars or arrays (verl reads them from parquet): they are sent as plain JSON.
All of them raise ``RewardServiceUnavailable`` when the service cannot be reached: a failed reward is never 0.
"""
from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Any, Optional, Sequence

from reward_service.client import AsyncRewardClient, RewardClient, ScoreResult

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


def plain(value: Any) -> Any:
    """``value`` as plain JSON types: numpy (or torch) scalars and arrays become Python numbers and lists,
    tuples become lists, recursively. Ground truths read from parquet by verl or datasets arrive as numpy."""
    if value is None or type(value) in (str, bool, int, float):
        return value
    if isinstance(value, str):  # numpy.str_
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy.generic, numpy.ndarray, torch.Tensor
    if callable(tolist):
        return plain(tolist())
    return value


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
        golds = [plain(g) for g in kwargs[col]]
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


def _scheme(extra_info: Any) -> Optional[str]:
    """The scheme of one verl sample: ``extra_info["reward_scheme"]``, else ``MATHRL_REWARD_SCHEME``."""
    per = extra_info.get("reward_scheme") if isinstance(extra_info, dict) else None
    return per or os.environ.get("MATHRL_REWARD_SCHEME") or None


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Optional[dict] = None,
                  **kwargs) -> float:
    """verl's per-sample reward function, scored by the service (``MATHRL_REWARD_URL``): one request."""
    return _verl_client().score([solution_str], [plain(ground_truth)], scheme=_scheme(extra_info))[0].reward


def compute_score_batch(data_sources: Sequence[Any] = None, solution_strs: Sequence[str] = None,
                        ground_truths: Sequence[Any] = None, extra_infos: Optional[Sequence[Optional[dict]]] = None,
                        **kwargs) -> list[float]:
    """verl's batched reward function (the legacy BatchRewardManager): one HTTP request per batch."""
    if solution_strs is None:
        if "solution_str" in kwargs:
            raise TypeError(
                "compute_score_batch was called with one sample (solution_str=...): verl's reward loop (the default "
                "from verl 0.7, the only path from 0.7.1) calls the reward function once per sample and has no "
                "'batch' reward manager. Name custom_reward_function.name=compute_score_async (the adapter batches "
                "the concurrent calls into one request) or compute_score; compute_score_batch is for "
                "reward_model.reward_manager=batch on verl < 0.7, or on 0.7.0 with reward_model.use_reward_loop=False")
        raise TypeError("compute_score_batch needs solution_strs= (and data_sources=, ground_truths=)")
    if ground_truths is None or len(ground_truths) != len(solution_strs):
        raise ValueError(f"{len(solution_strs)} solution_strs but "
                         f"{'no' if ground_truths is None else len(ground_truths)} ground_truths")
    schemes = None
    if extra_infos is not None:
        per = [(e or {}).get("reward_scheme") if isinstance(e, dict) or e is None else None for e in extra_infos]
        schemes = per if any(per) else None
    results = _verl_client().score(list(solution_strs), [plain(g) for g in ground_truths],
                                   scheme=os.environ.get("MATHRL_REWARD_SCHEME") or None, schemes=schemes)
    return [r.reward for r in results]


class _Coalescer:
    """Collects the reward requests made concurrently on one event loop and sends them as one batched request.

    verl's reward loop awaits the reward function once per sample, all samples of a batch concurrently; the
    first call opens a window of ``window`` seconds, every call that arrives in it joins the same request
    (``AsyncRewardClient`` splits it into chunks of its ``max_batch``). An error reaches every caller of the
    request: nothing is turned into a reward.
    """

    def __init__(self, client: AsyncRewardClient, window: float):
        self.client, self.window = client, window
        self._pending: list = []
        self._timer: Optional[asyncio.TimerHandle] = None
        self._sending: set = set()

    async def score(self, completion: str, gold: Any, scheme: Optional[str]) -> float:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((completion, gold, scheme, future))
        if self._timer is None:
            self._timer = loop.call_later(self.window, self._flush)
        return await future

    def _flush(self) -> None:
        self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)  # keep a reference until it is done
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list) -> None:
        schemes = [s for _, _, s, _ in batch]
        try:
            results = await self.client.score([c for c, _, _, _ in batch], [g for _, g, _, _ in batch],
                                              schemes=schemes if any(schemes) else None)
        except BaseException as e:  # every waiting caller gets the error, or is cancelled with the request
            for *_, future in batch:
                if not future.done():
                    future.cancel() if isinstance(e, asyncio.CancelledError) else future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for (*_, future), r in zip(batch, results):
            if not future.done():  # a caller that was cancelled meanwhile
                future.set_result(r.reward)


_coalescers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def _coalescer() -> _Coalescer:
    """One coalescer per event loop and (url, token), read from the environment at call time."""
    loop = asyncio.get_running_loop()
    url, token = os.environ.get("MATHRL_REWARD_URL", DEFAULT_URL), os.environ.get("MATHRL_REWARD_TOKEN")
    per_loop = _coalescers.setdefault(loop, {})
    if (url, token) not in per_loop:
        raw = os.environ.get("MATHRL_REWARD_BATCH_WINDOW", "0.05")
        try:
            window = float(raw)
        except ValueError:
            window = float("nan")
        if not window >= 0:
            raise ValueError(f"MATHRL_REWARD_BATCH_WINDOW must be a number of seconds >= 0, not {raw!r}")
        per_loop[(url, token)] = _Coalescer(AsyncRewardClient(url, token=token), window)
    return per_loop[(url, token)]


async def compute_score_async(data_source: Any, solution_str: str, ground_truth: Any,
                              extra_info: Optional[dict] = None, **kwargs) -> float:
    """verl's per-sample reward function as a coroutine (verl >= 0.7's reward loop awaits it): the calls made
    concurrently on one event loop go to the service as one batched request."""
    return await _coalescer().score(solution_str, plain(ground_truth), _scheme(extra_info))
