"""HTTP clients for the reward service (sync and asyncio, httpx), and a helper that starts a local service.

    with RewardClient("http://127.0.0.1:8000") as rc:
        results = rc.score(completions, golds, scheme="simplerl")   # list[ScoreResult], input order
        rewards = [r.reward for r in results]

Failures are never turned into rewards: a service that cannot be reached (after retries with exponential
backoff on connection errors, 5xx, 429 and 408 answers, waiting at least what ``Retry-After`` asks) raises
``RewardServiceUnavailable``; a request the service rejects (400 unknown scheme, 401, 413, 422) raises
``RewardServiceError`` with the service's message at once; so does a reply that is not what the protocol says
(not JSON, a NaN or infinite reward, an unknown verdict, the wrong number of results).

Each ``ScoreResult`` says whether the item is a real verdict: ``timed_out`` (over the time limit on two
workers: ``wrong`` says nothing about the answer) and ``retries`` (it was run again because its worker hung or
died). A trainer can count them (``timeout_rate``) and leave timed-out samples out of its loss.
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import httpx

DEFAULT_MAX_BATCH = 1024
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
VERDICTS = frozenset({"correct", "wrong", "no_answer"})
_RETRY_EXC = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError,
              httpx.WriteError, httpx.PoolTimeout)


class RewardServiceError(RuntimeError):
    """The service answered with an error (or an answer that does not fit the request)."""

    def __init__(self, message: str, status_code: Optional[int] = None, detail: Any = None):
        super().__init__(message)
        self.status_code, self.detail = status_code, detail
        self.retry_after = 0.0  # seconds the service asked to wait (Retry-After)


class RewardServiceUnavailable(RewardServiceError):
    """The service could not be reached or kept failing (5xx) after all retries."""


class RewardServiceTimeout(RewardServiceUnavailable):
    """The service accepted the request but did not answer within the read timeout (not retried)."""


@dataclass(frozen=True)
class ScoreResult:
    reward: float
    verdict: str  # "correct" | "wrong" | "no_answer"
    answer: Optional[str]
    reason: str
    timed_out: bool = False  # over the time limit on two workers (verdict "wrong", reason "timeout")
    retries: int = 0  # times the item was run again because its worker hung past the limit or died


def _chunks(seq: Sequence, n: int) -> list:
    return [seq[i:i + n] for i in range(0, len(seq), n)]


def _reward(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise RewardServiceError(f"malformed reply from the reward service: {where} is {x!r}, not a number")
    if not math.isfinite(x):
        raise RewardServiceError(f"malformed reply from the reward service: {where} is {x} (not a finite reward)")
    return float(x)


def _retry_after(resp: httpx.Response) -> float:
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:  # absent, or an HTTP date: use our own backoff
        return 0.0


class _Base:
    def __init__(self, url: str, *, token: Optional[str] = None, timeout: float = 300.0, connect_timeout: float = 5.0,
                 max_batch: int = DEFAULT_MAX_BATCH, retries: int = 4, backoff: float = 0.5, backoff_max: float = 10.0,
                 scheme: Optional[str] = None):
        if max_batch < 1 or retries < 0:
            raise ValueError("max_batch must be >= 1 and retries >= 0")
        self.url = url.rstrip("/")
        self.max_batch = max_batch
        self.retries = retries
        self.backoff, self.backoff_max = backoff, backoff_max
        self.scheme = scheme
        # As bytes: httpx encodes str header values as ASCII, so a non-ASCII token would fail in the client
        self._headers = {"Authorization": b"Bearer " + token.encode("utf-8")} if token else {}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)

    def _delay(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)

    def _items(self, completions: Sequence[str], golds: Sequence[Any], schemes: Optional[Sequence[Optional[str]]]):
        if len(completions) != len(golds):
            raise ValueError(f"{len(completions)} completions but {len(golds)} golds")
        if schemes is not None and len(schemes) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(schemes)} schemes")
        items = []
        for i, (c, g) in enumerate(zip(completions, golds)):
            it = {"completion": c, "gold": g}
            if schemes is not None and schemes[i]:
                it["scheme"] = schemes[i]
            items.append(it)
        return items

    def _body(self, items: list, scheme: Optional[str]) -> dict:
        body: dict = {"items": items}
        if scheme or self.scheme:
            body["scheme"] = scheme or self.scheme
        return body

    @staticmethod
    def _parse_results(resp_json: Any, n: int) -> list[ScoreResult]:
        try:
            results = resp_json["results"]
            out = []
            for i, r in enumerate(results):
                if r["verdict"] not in VERDICTS:
                    raise RewardServiceError(f"malformed reply from the reward service: results[{i}] has the unknown "
                                             f"verdict {r['verdict']!r} (expected one of {sorted(VERDICTS)})")
                out.append(ScoreResult(_reward(r["reward"], f"results[{i}].reward"), r["verdict"], r.get("answer"),
                                       r.get("reason", ""), bool(r.get("timed_out", False)), int(r.get("retries", 0))))
        except (KeyError, TypeError, ValueError) as e:
            raise RewardServiceError(f"malformed reply from the reward service: {e!r}") from e
        if len(out) != n:
            raise RewardServiceError(f"the reward service returned {len(out)} results for {n} items")
        return out

    @staticmethod
    def _check_reward_reply(resp_json: Any, n: int) -> dict:
        """A ``/get_reward`` reply: ``rewards`` (and ``scores`` if present) are n finite numbers."""
        if not isinstance(resp_json, dict) or not isinstance(resp_json.get("rewards"), list):
            raise RewardServiceError(f"malformed reply from the reward service: no 'rewards' list in {str(resp_json)[:200]}")
        for key in ("rewards", "scores"):
            values = resp_json.get(key)
            if values is None:
                continue
            if not isinstance(values, list) or len(values) != n:
                raise RewardServiceError(f"the reward service returned {len(values) if isinstance(values, list) else values!r} "
                                         f"{key} for {n} queries")
            for i, x in enumerate(values):
                _reward(x, f"{key}[{i}]")
        return resp_json

    def _json(self, resp: httpx.Response, path: str) -> Any:
        try:
            return resp.json()
        except ValueError as e:  # a proxy's HTML page, a truncated body, ...: not the service's answer
            ctype = resp.headers.get("content-type", "?")
            raise RewardServiceError(f"reward service {self.url}{path} answered {resp.status_code} with a body that is "
                                     f"not JSON (content-type {ctype}): {resp.text[:200]!r}", resp.status_code) from e

    def _wait(self, attempt: int, last: Optional[BaseException]) -> float:
        """Seconds before retry ``attempt`` (>= 1): exponential backoff, at least what Retry-After asked."""
        delay = self._delay(attempt - 1)
        asked = getattr(last, "retry_after", 0.0)
        return max(delay, min(asked, max(self.backoff_max, 1.0)))

    def _error_from(self, resp: httpx.Response, path: str) -> RewardServiceError:
        try:
            detail = resp.json()
            msg = detail.get("message") or detail.get("detail") if isinstance(detail, dict) else detail
        except ValueError:
            detail = msg = resp.text[:500]
        cls = RewardServiceUnavailable if resp.status_code in RETRY_STATUS else RewardServiceError
        err = cls(f"reward service {self.url}{path} answered {resp.status_code}: {msg}", resp.status_code, detail)
        err.retry_after = _retry_after(resp)
        return err

    def _unavailable(self, path: str, last: Optional[BaseException], attempts: int) -> RewardServiceUnavailable:
        if isinstance(last, RewardServiceError):
            return RewardServiceUnavailable(f"{last} (after {attempts} attempts)", last.status_code, last.detail)
        return RewardServiceUnavailable(
            f"reward service unreachable at {self.url}{path} after {attempts} attempts: {type(last).__name__}: {last}")


class RewardClient(_Base):
    """Synchronous client. Large batches are split into ``max_batch``-item requests."""

    def __init__(self, url: str, **kw):
        super().__init__(url, **kw)
        self._http = httpx.Client(timeout=self._timeout, headers=self._headers)

    def _request(self, method: str, path: str, json: Any = None) -> Any:
        last: Optional[BaseException] = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self._wait(attempt, last))
            try:
                resp = self._http.request(method, self.url + path, json=json)
            except httpx.TimeoutException as e:
                if isinstance(e, (httpx.ConnectTimeout, httpx.PoolTimeout)):
                    last = e
                    continue
                raise RewardServiceTimeout(f"reward service {self.url}{path} did not answer in time: {e}") from e
            except _RETRY_EXC as e:
                last = e
                continue
            if resp.status_code < 400:
                return self._json(resp, path)
            err = self._error_from(resp, path)
            if resp.status_code not in RETRY_STATUS:
                raise err
            last = err
        raise self._unavailable(path, last, self.retries + 1)

    def score_items(self, items: Sequence[dict], scheme: Optional[str] = None) -> list[ScoreResult]:
        """Score ``[{"completion", "gold", "scheme"?}, ...]``; returns results in input order."""
        out: list[ScoreResult] = []
        for chunk in _chunks(list(items), self.max_batch):
            out.extend(self._parse_results(self._request("POST", "/v1/score", self._body(chunk, scheme)), len(chunk)))
        return out

    def score(self, completions: Sequence[str], golds: Sequence[Any], scheme: Optional[str] = None,
              schemes: Optional[Sequence[Optional[str]]] = None) -> list[ScoreResult]:
        return self.score_items(self._items(completions, golds, schemes), scheme)

    def rewards(self, completions: Sequence[str], golds: Sequence[Any], scheme: Optional[str] = None) -> list[float]:
        return [r.reward for r in self.score(completions, golds, scheme)]

    def get_reward(self, queries: Sequence[str], prompts: Optional[Sequence[str]], labels: Sequence[Any],
                   scheme: Optional[str] = None) -> dict:
        """OpenRLHF's protocol (one request; no chunking)."""
        body: dict = {"query": list(queries), "prompts": None if prompts is None else list(prompts), "labels": list(labels)}
        if scheme or self.scheme:
            body["scheme"] = scheme or self.scheme
        return self._check_reward_reply(self._request("POST", "/get_reward", body), len(body["query"]))

    def health(self) -> dict:
        return self._request("GET", "/health")

    def schemes(self) -> dict:
        return self._request("GET", "/v1/schemes")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncRewardClient(_Base):
    """asyncio client; the chunks of a large batch are sent concurrently (at most ``max_concurrency``)."""

    def __init__(self, url: str, *, max_concurrency: int = 4, **kw):
        super().__init__(url, **kw)
        self.max_concurrency = max_concurrency
        self._http = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)

    async def _request(self, method: str, path: str, json: Any = None) -> Any:
        last: Optional[BaseException] = None
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self._wait(attempt, last))
            try:
                resp = await self._http.request(method, self.url + path, json=json)
            except httpx.TimeoutException as e:
                if isinstance(e, (httpx.ConnectTimeout, httpx.PoolTimeout)):
                    last = e
                    continue
                raise RewardServiceTimeout(f"reward service {self.url}{path} did not answer in time: {e}") from e
            except _RETRY_EXC as e:
                last = e
                continue
            if resp.status_code < 400:
                return self._json(resp, path)
            err = self._error_from(resp, path)
            if resp.status_code not in RETRY_STATUS:
                raise err
            last = err
        raise self._unavailable(path, last, self.retries + 1)

    async def score_items(self, items: Sequence[dict], scheme: Optional[str] = None) -> list[ScoreResult]:
        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(chunk):
            async with sem:
                return self._parse_results(await self._request("POST", "/v1/score", self._body(chunk, scheme)), len(chunk))

        parts = await asyncio.gather(*(one(c) for c in _chunks(list(items), self.max_batch)))
        return [r for part in parts for r in part]

    async def score(self, completions: Sequence[str], golds: Sequence[Any], scheme: Optional[str] = None,
                    schemes: Optional[Sequence[Optional[str]]] = None) -> list[ScoreResult]:
        return await self.score_items(self._items(completions, golds, schemes), scheme)

    async def rewards(self, completions: Sequence[str], golds: Sequence[Any], scheme: Optional[str] = None) -> list[float]:
        return [r.reward for r in await self.score(completions, golds, scheme)]

    async def get_reward(self, queries: Sequence[str], prompts: Optional[Sequence[str]], labels: Sequence[Any],
                         scheme: Optional[str] = None) -> dict:
        body: dict = {"query": list(queries), "prompts": None if prompts is None else list(prompts), "labels": list(labels)}
        if scheme or self.scheme:
            body["scheme"] = scheme or self.scheme
        return self._check_reward_reply(await self._request("POST", "/get_reward", body), len(body["query"]))

    async def health(self) -> dict:
        return await self._request("GET", "/health")

    async def schemes(self) -> dict:
        return await self._request("GET", "/v1/schemes")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncRewardClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


# ------------------------------------------------------------------------------------- local service


class LocalService:
    """A reward service running as a subprocess on a loopback port (see ``start_service``)."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: str, token: Optional[str]):
        self.process, self.url, self.log_path, self.token = process, url, log_path, token

    def client(self, **kw) -> RewardClient:
        return RewardClient(self.url, token=self.token, **kw)

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        p = self.process
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def __enter__(self) -> "LocalService":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_service(*, workers: Optional[int] = None, timeout: Optional[float] = None, args: Sequence[str] = (),
                  env: Optional[dict] = None, token: Optional[str] = None, startup_timeout: float = 180.0,
                  log_path: Optional[str] = None, python: Optional[str] = None) -> LocalService:
    """Start ``reward-service`` on a free loopback port and wait until ``/health`` is ok.

    The port is bound here and handed to the child as an open socket, so no other process can take it in
    between. Raises RuntimeError (with the service log) if it exits or does not become healthy in time.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    fd = sock.fileno()
    # --parent-pid: the service shuts down when this process dies, even by SIGKILL (reward_service.lifeline)
    cmd = [python or sys.executable, "-m", "reward_service.cli", "--fd", str(fd), "--parent-pid", str(os.getpid())]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if timeout is not None:
        cmd += ["--timeout", str(timeout)]
    cmd += list(args)
    child_env = dict(os.environ if env is None else env)
    if token:
        child_env["REWARD_SERVICE_TOKEN"] = token
    if log_path is None:
        fdlog, log_path = tempfile.mkstemp(prefix="reward-service-", suffix=".log")
        os.close(fdlog)
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, pass_fds=(fd,), stdout=logf, stderr=subprocess.STDOUT, env=child_env,
                                stdin=subprocess.DEVNULL)
    sock.close()
    svc = LocalService(proc, f"http://127.0.0.1:{port}", log_path, token)
    deadline = time.monotonic() + startup_timeout
    with httpx.Client(timeout=2.0) as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"reward service exited with code {proc.returncode}:\n{svc.log_tail()}")
            try:
                if http.get(svc.url + "/health").status_code == 200:
                    return svc
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                svc.stop()
                raise RuntimeError(f"reward service not healthy after {startup_timeout:.0f}s:\n{svc.log_tail()}")
            time.sleep(0.1)
