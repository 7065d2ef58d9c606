"""What every request passes before the app: metrics, bearer-token auth, and a byte-bounded body receive.

Request bodies are read here, not by the framework, under three limits (the middleware is pure ASGI):

* ``max_body_bytes``: a larger declared ``Content-Length`` is refused before anything is read (413), and a
  chunked body is cut off when it passes the limit (413);
* ``max_pending_body_bytes``: the bytes of all bodies the server holds at once (being received, parsed or
  graded). A request waits for its share before its body is read; while it waits its bytes stay in the kernel's
  socket buffer (TCP back-pressure), not in the server. A request that cannot get its share within
  ``body_timeout`` gets 503 with ``Retry-After`` (the clients retry it);
* ``body_timeout``: the whole body must arrive within this many seconds of the request's start, or 408 and
  the connection is closed. An unfinished upload cannot hold memory (or its share) for longer.

Red-team figures before: 20 connections holding unfinished 30 MB uploads raised the server's RSS 69 -> 649 MB,
another round -> 821 MB, never returned. The body is read into one buffer that grows as data arrives (never
pre-allocated from a declared length) and is freed when the response has been sent; after large bodies the C
allocator is asked to return free memory to the system (``malloc_trim``, glibc only).
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import json
import secrets
import time
from typing import Optional

PUBLIC_PATHS = frozenset({"/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
BODY_KEY = "mathrl.body"  # the ASGI scope key under which the app finds the request body (a bytearray)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CHUNKED_SHARE = 1 << 20  # a body without Content-Length takes its share of the budget 1 MiB at a time
_TRIM_AFTER = 4 << 20  # ask the allocator to give memory back after bodies of at least this size
_RAISE_HINT = {
    "max_body_bytes": "raise it with --max-body-bytes or REWARD_SERVICE_MAX_BODY_BYTES",
    "max_pending_body_bytes": "raise it with --max-pending-body-bytes or REWARD_SERVICE_MAX_PENDING_BODY_BYTES",
    "body_timeout": "raise it with --body-timeout or REWARD_SERVICE_BODY_TIMEOUT",
}


class BodyBudget:
    """Bytes of request bodies held at once. ``acquire`` waits (first fit, in arrival order) for a share."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.peak = 0
        self.waits = 0  # requests that had to wait for their share
        self.refused = 0  # requests that did not get it within body_timeout (503)
        self._waiters: collections.deque = collections.deque()  # (bytes, future)

    async def acquire(self, n: int, deadline: float) -> bool:
        if self.used + n <= self.limit:
            self._take(n)
            return True
        self.waits += 1
        fut = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
            return True
        except asyncio.TimeoutError:
            if fut.done() and not fut.cancelled():  # granted just as the wait timed out
                return True
            self.refused += 1
            return False
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def release(self, n: int) -> None:
        self.used -= n
        for entry in list(self._waiters):
            need, fut = entry
            if not fut.done() and self.used + need <= self.limit:
                self._waiters.remove(entry)
                self._take(need)
                fut.set_result(True)

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)


class BodyRejected(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


class GuardMiddleware:
    """Pure ASGI: request metrics, bearer-token auth, then the body (see the module docstring)."""

    def __init__(self, app, settings, metrics_ref: dict, budget: BodyBudget):
        self.app = app
        self.token = b"Bearer " + settings.token.encode("utf-8") if settings.token else None
        self.max_body = settings.max_body_bytes
        self.body_timeout = settings.body_timeout
        self.metrics_ref = metrics_ref
        self.budget = budget

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        path = scope.get("path", "")
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if self.token and path not in PUBLIC_PATHS and not self._authorized(scope):
                return await send_json(send_wrapper, 401, {"detail": "missing or wrong bearer token"},
                                       extra_headers=[(b"www-authenticate", b"Bearer")])
            if scope.get("method") not in _BODY_METHODS:
                return await self.app(scope, receive, send_wrapper)
            await self._with_body(scope, receive, send_wrapper)
        finally:
            m = self.metrics_ref.get("metrics")
            if m is not None:
                m.observe_request(path, status["code"], time.perf_counter() - t0)

    async def _with_body(self, scope, receive, send) -> None:
        length = header(scope, b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > self.max_body:
            return await _reject(send, BodyRejected(413, self._too_large(declared)))
        deadline = time.monotonic() + self.body_timeout
        share = declared if declared is not None else _CHUNKED_SHARE
        if not await self.budget.acquire(share, deadline):
            return await _reject(send, BodyRejected(503, self._busy(share)), [(b"retry-after", b"1")])
        try:
            try:
                body, share = await self._receive_body(receive, declared, share, deadline)
            except BodyRejected as e:
                return await _reject(send, e)
            except ClientGone:
                return
            scope[BODY_KEY] = body
            done = False

            async def replay():  # the body was read here; after it only a disconnect can come
                nonlocal done
                if not done:
                    done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
        finally:
            scope.pop(BODY_KEY, None)
            self.budget.release(share)
            if share >= _TRIM_AFTER and self.budget.used == 0:
                trim_memory()

    async def _receive_body(self, receive, declared: Optional[int], share: int, deadline: float):
        body = bytearray()
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise BodyRejected(408, f"the request body did not arrive within {self.body_timeout:g}s ({len(body)} "
                                        f"bytes received; body_timeout, {_RAISE_HINT['body_timeout']})") from None
            if message["type"] == "http.disconnect":
                raise ClientGone()
            body += message.get("body", b"")
            if len(body) > self.max_body or (declared is not None and len(body) > declared):
                raise BodyRejected(413, self._too_large(len(body), streamed=True))
            while len(body) > share:  # a chunked body: take more of the budget as it arrives
                if not await self.budget.acquire(_CHUNKED_SHARE, deadline):
                    raise BodyRejected(503, self._busy(_CHUNKED_SHARE))
                share += _CHUNKED_SHARE
            if not message.get("more_body", False):
                return body, share

    def _authorized(self, scope) -> bool:
        got = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        return secrets.compare_digest(got, self.token)  # bytes: a non-ASCII token works (UTF-8)

    def _too_large(self, n: int, streamed: bool = False) -> str:
        what = f"more than {self.max_body}" if streamed else str(n)
        return (f"request body of {what} bytes is over the limit of {self.max_body} bytes (max_body_bytes; "
                f"{_RAISE_HINT['max_body_bytes']}, or split the batch)")

    def _busy(self, n: int) -> str:
        return (f"server busy: {self.budget.used} of {self.budget.limit} bytes of request bodies are in progress "
                f"and this one needs {n} more (max_pending_body_bytes; {_RAISE_HINT['max_pending_body_bytes']}); "
                "retry later")


def header(scope, name: bytes) -> Optional[str]:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


async def send_json(send, status: int, body: dict, extra_headers=()):
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra_headers)})
    await send({"type": "http.response.body", "body": data})


async def _reject(send, e: BodyRejected, extra_headers=()) -> None:
    """Answer before (all of) the body was read, and close the connection: what is left of it is not read."""
    await send_json(send, e.status, {"detail": e.detail}, [(b"connection", b"close"), *extra_headers])


def _load_malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
        fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
        return fn
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None


_MALLOC_TRIM = _load_malloc_trim()


def trim_memory() -> None:
    """Ask the C allocator to return free heap pages to the system (glibc ``malloc_trim``; else a no-op)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
