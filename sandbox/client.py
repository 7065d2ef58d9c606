"""A client of the sandbox endpoint (``sandbox.app``) with the executor's interface (``run``, ``run_many``,
``close``), so a multi-turn rollout uses a remote sandbox exactly like a local :class:`PythonExecutor`.

Connection errors and 5xx answers are retried with backoff; a sandbox that stays down raises
:class:`SandboxUnavailable` (a rollout stops with a clear error rather than feeding the model made-up output).
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import httpx

from sandbox.limits import ExecResult


class SandboxUnavailable(RuntimeError):
    pass


class SandboxClient:
    def __init__(self, url: str, *, token: Optional[str] = None, timeout: float = 300.0, retries: int = 5,
                 batch_size: int = 512):
        self.url = url.rstrip("/")
        self.retries = retries
        self.batch_size = batch_size
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0))

    def _post(self, snippets: list[str]) -> list[ExecResult]:
        last: Optional[BaseException] = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            try:
                resp = self._http.post("/v1/execute", json={"snippets": snippets})
            except httpx.TransportError as e:
                last = e
                continue
            if resp.status_code >= 500:
                last = RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
                continue
            if resp.status_code != 200:
                raise RuntimeError(f"sandbox at {self.url} refused the request: HTTP {resp.status_code} "
                                   f"{resp.text[:300]}")
            results = [ExecResult.from_dict(r) for r in resp.json()["results"]]
            if len(results) != len(snippets):
                raise RuntimeError(f"sandbox returned {len(results)} results for {len(snippets)} snippets")
            return results
        raise SandboxUnavailable(f"sandbox at {self.url} unavailable after {self.retries + 1} attempts: {last}")

    def run_many(self, codes: Sequence[str]) -> list[ExecResult]:
        out: list[ExecResult] = []
        for i in range(0, len(codes), self.batch_size):
            out += self._post(list(codes[i:i + self.batch_size]))
        return out

    def run(self, code: str) -> ExecResult:
        return self.run_many([code])[0]

    def health(self) -> dict:
        return self._http.get("/health").json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SandboxClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
