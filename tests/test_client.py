"""Client failure handling against real sockets: a closed port, and a real HTTP server that fails then recovers."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reward_service.client import (
    AsyncRewardClient,
    RewardClient,
    RewardServiceError,
    RewardServiceTimeout,
    RewardServiceUnavailable,
)

FAST = dict(retries=3, backoff=0.01, backoff_max=0.05)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    return port


class Scripted(ThreadingHTTPServer):
    """Answers POST /v1/score with the next scripted status (then 200 with boxed-answer rewards)."""

    daemon_threads = True

    def __init__(self, script):
        super().__init__(("127.0.0.1", 0), Handler)
        self.script = list(script)
        self.calls = []
        self.auth = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        srv = self.server
        srv.calls.append(body)
        srv.auth.append(self.headers.get("authorization"))
        step = srv.script.pop(0) if srv.script else 200
        if step == "sleep":
            time.sleep(1.0)
            step = 200
        if step == "close":  # drop the connection without an answer
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        headers = {"content-type": "application/json"}
        results = [{"reward": float(len(it["completion"])), "verdict": "wrong", "answer": None, "reason": "scripted"}
                   for it in body.get("items", [])]
        if step == "short":  # a reply with too few results
            payload = {"results": []}
            step = 200
        elif step == "nan":
            payload = {"results": [dict(r, reward=float("nan")) for r in results]}  # json.dumps writes NaN
            step = 200
        elif step == "verdict":
            payload = {"results": [dict(r, verdict="maybe") for r in results]}
            step = 200
        elif step == "html":  # a proxy's page with status 200
            payload, step, headers = "<html>Bad gateway</html>", 200, {"content-type": "text/html"}
        elif step == "reward_nan":
            payload, step = {"rewards": [float("nan")] * len(body["query"])}, 200
        elif step == "reward_short":
            payload, step = {"rewards": [], "scores": []}, 200
        elif isinstance(step, tuple):  # (status, retry-after seconds)
            step, headers["retry-after"] = step[0], str(step[1])
            payload = {"detail": f"scripted {step}"}
        elif step != 200:
            payload = {"detail": f"scripted {step}"}
        elif "query" in body:
            payload = {"rewards": [1.0] * len(body["query"]), "scores": [1.0] * len(body["query"]), "extra_logs": {}}
        else:
            payload = {"results": results}
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(step)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def scripted():
    servers = []

    def make(*script):
        srv = Scripted(script)
        threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


def test_unreachable_raises_never_zero():
    url = f"http://127.0.0.1:{closed_port()}"
    with RewardClient(url, **FAST) as c:
        t0 = time.monotonic()
        with pytest.raises(RewardServiceUnavailable) as e:
            c.score(["\\boxed{1}"], ["1"])
        assert "unreachable" in str(e.value) and "after 4 attempts" in str(e.value)
        assert time.monotonic() - t0 < 5


def test_async_unreachable():
    async def main():
        async with AsyncRewardClient(f"http://127.0.0.1:{closed_port()}", **FAST) as c:
            await c.score(["x"], ["1"])

    with pytest.raises(RewardServiceUnavailable):
        asyncio.run(main())


def test_5xx_then_recovers(scripted):
    srv = scripted(503, 500)
    with RewardClient(srv.url, **FAST) as c:
        res = c.score(["ab", "abc"], ["1", "2"])
    assert [r.reward for r in res] == [2.0, 3.0]
    assert len(srv.calls) == 3


def test_dropped_connection_is_retried(scripted):
    srv = scripted("close")
    with RewardClient(srv.url, **FAST) as c:
        assert c.rewards(["abcd"], ["1"]) == [4.0]
    assert len(srv.calls) == 2


def test_persistent_5xx_raises_unavailable(scripted):
    srv = scripted(503, 503, 503, 503, 503)
    with RewardClient(srv.url, **FAST) as c:
        with pytest.raises(RewardServiceUnavailable) as e:
            c.score(["x"], ["1"])
    assert e.value.status_code == 503 and "scripted 503" in str(e.value)
    assert len(srv.calls) == 4


@pytest.mark.parametrize("status", [400, 401, 413, 422])
def test_4xx_is_not_retried(scripted, status):
    srv = scripted(status)
    with RewardClient(srv.url, **FAST) as c:
        with pytest.raises(RewardServiceError) as e:
            c.score(["x"], ["1"])
    assert not isinstance(e.value, RewardServiceUnavailable)
    assert e.value.status_code == status and len(srv.calls) == 1


def test_read_timeout_is_reported(scripted):
    srv = scripted("sleep")
    with RewardClient(srv.url, timeout=0.3, **FAST) as c:
        with pytest.raises(RewardServiceTimeout):
            c.score(["x"], ["1"])
    assert len(srv.calls) == 1  # a slow service is not hammered with retries


def test_reply_with_wrong_length_is_an_error(scripted):
    srv = scripted("short")
    with RewardClient(srv.url, **FAST) as c:
        with pytest.raises(RewardServiceError, match="returned 0 results for 1 items"):
            c.score(["x"], ["1"])


def test_chunking_and_async_retry(scripted):
    srv = scripted(502)
    n = 25

    async def main():
        async with AsyncRewardClient(srv.url, max_batch=10, max_concurrency=2, **FAST) as c:
            return await c.score(["x" * i for i in range(n)], ["1"] * n)

    res = asyncio.run(main())
    assert [r.reward for r in res] == [float(i) for i in range(n)]
    assert sorted(len(b["items"]) for b in srv.calls) == [5, 10, 10, 10]  # one chunk was retried


def test_argument_checks():
    with RewardClient("http://127.0.0.1:9") as c:
        with pytest.raises(ValueError):
            c.score(["a", "b"], ["1"])
    with pytest.raises(ValueError):
        RewardClient("http://127.0.0.1:9", max_batch=0)


@pytest.mark.parametrize("step,match", [
    ("html", "answered 200 with a body that is not JSON .*text/html.*Bad gateway"),
    ("nan", r"results\[0\].reward is nan \(not a finite reward\)"),
    ("verdict", "unknown verdict 'maybe'"),
])
def test_a_reply_that_breaks_the_protocol_is_an_error(scripted, step, match):
    """Regression: a 200 non-JSON reply raised a raw JSONDecodeError; NaN rewards and unknown verdicts passed."""
    srv = scripted(step)
    with RewardClient(srv.url, **FAST) as c:
        with pytest.raises(RewardServiceError, match=match) as e:
            c.score(["x"], ["1"])
    assert not isinstance(e.value, RewardServiceUnavailable) and len(srv.calls) == 1  # not retried


@pytest.mark.parametrize("step,match", [("reward_nan", r"rewards\[0\] is nan"), ("reward_short", "returned 0 rewards")])
def test_get_reward_reply_is_checked(scripted, step, match):
    srv = scripted(step)
    with RewardClient(srv.url, **FAST) as c:
        with pytest.raises(RewardServiceError, match=match):
            c.get_reward(["q \\boxed{1}"], ["q"], ["1"])
        assert c.get_reward(["q"], None, ["1"])["rewards"] == [1.0]


def test_429_and_408_are_retried_after_retry_after(scripted):
    """Regression: 429 (too many requests) was not retried."""
    srv = scripted((429, 0.3), 408)
    with RewardClient(srv.url, **FAST) as c:
        t0 = time.monotonic()
        assert c.rewards(["ab"], ["1"]) == [2.0]
        assert time.monotonic() - t0 >= 0.3  # waited what the service asked, not the 10 ms backoff
    assert len(srv.calls) == 3


def test_result_fields_and_old_servers(scripted):
    srv = scripted(200)
    with RewardClient(srv.url, **FAST) as c:
        r = c.score(["x"], ["1"])[0]
    assert (r.timed_out, r.retries) == (False, 0)  # a reply without the fields (an older service) still parses


def test_non_ascii_token_is_sent_as_utf8(scripted):
    """Regression: httpx refused to encode a non-ASCII bearer token (UnicodeEncodeError)."""
    srv = scripted(200)
    with RewardClient(srv.url, token="pässwörd-密码", **FAST) as c:
        c.score(["x"], ["1"])
    assert srv.auth[0].encode("latin-1").decode("utf-8") == "Bearer pässwörd-密码"
