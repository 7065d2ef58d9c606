"""The red team's attacks on the reward service (issue 16), replayed against a real uvicorn service on loopback.

Every loop here is bounded in count and in time. The service grades with ``reward_service_fakes:flaky_start_or_real``
(the real grader; scripted markers HANG/NAP/...; workers cannot start while a flag file exists) and its bearer
token is not ASCII. /health is timed from a process of its own (``benchmarks.bench_load.Probe``) so that the test
process's own work is not counted as the server's latency.
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.bench_load import Probe
from benchmarks.procs import kill_workers, rss_mb, worker_pids
from reward_service.client import RewardClient, start_service

TOKEN = "tökén-密码"  # regression: a non-ASCII bearer token could not be used
AUTH = {"Authorization": b"Bearer " + TOKEN.encode("utf-8")}
TESTS_DIR = str(Path(__file__).resolve().parent)
MAX_BODY = 32 << 20
PENDING = 64 << 20
BODY_TIMEOUT = 3.0
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fail_flag(tmp_path_factory):
    return tmp_path_factory.mktemp("chaos") / "workers-cannot-start"


@pytest.fixture(scope="module")
def service(fail_flag):
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env["MATHRL_FAKE_FAIL_START"] = str(fail_flag)
    svc = start_service(
        workers=2, timeout=1.0, token=TOKEN, env=env,
        args=["--grader", "reward_service_fakes:flaky_start_or_real", "--max-body-bytes", str(MAX_BODY),
              "--max-pending-body-bytes", str(PENDING), "--body-timeout", str(BODY_TIMEOUT), "--restart-backoff-max", "2", "--log-level", "warning"])
    yield svc
    svc.stop()
    assert svc.process.returncode in (0, -signal.SIGTERM), svc.log_tail()


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service.url, headers=AUTH, timeout=120) as c:
        yield c


def wait_until(predicate, seconds: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def health(service) -> dict:
    return httpx.get(service.url + "/health", timeout=10).json()


def metric(http, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f"mathrl_reward_{name}_total ") or line.startswith(f"mathrl_reward_{name} "):
            return float(line.split()[-1])
    raise KeyError(name)


def test_non_ascii_token(service):
    with RewardClient(service.url, token=TOKEN) as c:
        assert c.rewards(["so \\boxed{2}"], ["2"]) == [1.0]
    assert httpx.post(service.url + "/v1/score", json={"items": []},
                      headers={"Authorization": b"Bearer t\xc3\xb6k"}).status_code == 401


def test_1_prompt_search_does_not_block_the_server(http, service):
    """Attack 1: a prompt that is not in its query, shaped so that a regex search was quadratic (6-9 s per query,
    /health as slow)."""
    prompt, query = "a " * 3000, ("a" * 2999 + "b") * 100
    with Probe(service.url) as probe:
        t0 = time.monotonic()
        r = http.post("/get_reward", json={"query": [query] * 4, "prompts": [prompt] * 4, "labels": ["1"] * 4})
        elapsed = time.monotonic() - t0
    assert r.status_code == 200 and r.json()["extra_logs"]["prompt_not_found"] == [1.0] * 4
    assert elapsed < 10, elapsed  # 4 queries: 24-36 s before
    assert probe.failures == 0 and max(probe.latencies) < 1.0, probe.summary()


@pytest.mark.parametrize("body,where", [
    (b'{"items": [', "body (character 11): malformed JSON: Expecting value"),
    (b'\xff\xfe{"items": []}', "not valid UTF-8 (byte 0"),  # a bare 400 before
    (b'{"items": [{"completion": "x", "gold": "1"}]} trailing', "Extra data"),
    (b'[1, 2]', "body: the body must be a JSON object, not an array"),
    (b'{"items": [{"completion": "x", "gold": "1", "extra": 1}]}', "items.0.extra: Extra inputs are not permitted"),
])
def test_8_malformed_bodies_are_422_naming_the_problem(http, body, where):
    r = http.post("/v1/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and where in r.json()["message"], r.text


def test_5_a_stopped_worker_does_not_penalise_correct_answers(http, service):
    """Attack 5: a SIGSTOPped worker turned correct items into wrong/timeout. Now the item it was on runs again
    on another worker; the reply and the metrics say so."""
    assert wait_until(lambda: len(worker_pids(service.process.pid)) == 2, 30)
    before = (metric(http, "timeouts"), metric(http, "timeout_retries"))
    items = [{"completion": f"NAP stop {i} \\boxed{{{i}}}", "gold": str(i)} for i in range(40)]
    out = {}
    t = threading.Thread(target=lambda: out.update(r=http.post("/v1/score", json={"items": items})))
    t.start()
    time.sleep(0.3)
    os.kill(worker_pids(service.process.pid)[0], signal.SIGSTOP)
    t.join(60)
    res = out["r"].json()["results"]
    assert [x["verdict"] for x in res] == ["correct"] * 40 and [x["answer"] for x in res] == [str(i) for i in range(40)]
    assert sum(x["retries"] for x in res) == 1 and not any(x["timed_out"] for x in res)
    assert (metric(http, "timeouts"), metric(http, "timeout_retries")) == (before[0], before[1] + 1)
    # an item that is over the limit on two workers is a timeout, and says it is one
    res = http.post("/v1/score", json={"items": [{"completion": "HANG", "gold": "1"}]}).json()["results"][0]
    assert (res["verdict"], res["reason"], res["timed_out"], res["retries"]) == ("wrong", "timeout", True, 1)


def _unfinished_uploads(port: int, n: int, size: int, send: int) -> list[socket.socket]:
    """n connections that declare ``size`` bytes and send ``send`` of them (as far as the server reads)."""
    socks, chunk = [], b"x" * (1 << 20)
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
                  f"Authorization: Bearer ".encode() + TOKEN.encode() + b"\r\n\r\n")
        s.settimeout(0.2)
        sent = 0
        try:
            while sent < send:
                sent += s.send(chunk[: min(len(chunk), send - sent)])
        except socket.timeout:
            pass  # the server does not read this one (yet): its bytes wait in the kernel's buffers
        socks.append(s)
    return socks


def test_6_unfinished_uploads_do_not_hold_memory(http, service):
    """Attack 6: 20 connections holding unfinished 30 MB uploads raised the RSS 69 -> 649 MB, another round -> 821
    MB, never returned. Now: at most max_pending_body_bytes are read, the rest waits in the kernel, every upload
    is cut off after body_timeout, and the memory goes back."""
    port = int(service.url.rsplit(":", 1)[1])
    pid = service.process.pid
    base = rss_mb(pid)
    for _ in range(2):
        socks = _unfinished_uploads(port, 20, 30_000_000, 29_000_000)
        time.sleep(1.0)
        peak = rss_mb(pid) - base
        assert peak < PENDING / 2**20 + 60, peak  # ~580 MB before
        # a small request still gets through while they hang
        assert http.post("/v1/score", json={"items": [{"completion": "\\boxed{1}", "gold": "1"}]}).status_code == 200
        statuses = []
        deadline = time.monotonic() + BODY_TIMEOUT + 10
        for s in socks:  # every one is answered (408 cut off, or 503 never admitted) within body_timeout
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                statuses.append(int(s.recv(4096).split()[1]))
            except (OSError, IndexError):
                statuses.append(None)
            s.close()
        assert set(statuses) <= {408, 503} and 408 in statuses, statuses
    assert wait_until(lambda: rss_mb(pid) - base < 40, 10), (rss_mb(pid), base)
    assert metric(http, "body_waits") > 0  # uploads waited for their share of max_pending_body_bytes


def test_3_the_pool_heals_after_workers_are_killed_before_they_start(http, service):
    """Attack 3: kill both workers, then their replacements before they report ready: the pool said "broken"
    and answered 503 for good. Now it restarts them with a bounded backoff and /health says where it stands."""
    pid = service.process.pid
    seen = []
    deadline = time.monotonic() + 4.0
    kills = 0
    while time.monotonic() < deadline and kills < 400:  # bounded: 4 s, 400 kills
        kills += kill_workers(pid)
        h = health(service)
        seen.append((h["status"], h["workers_ready"]))
        time.sleep(0.01)
    assert kills >= 3
    assert all(status != "ok" for status, ready in seen if ready == 0)  # never "ok" without a worker
    assert wait_until(lambda: health(service)["status"] == "ok", 30), health(service)
    assert http.post("/v1/score", json={"items": [{"completion": "\\boxed{1}", "gold": "1"}]}).json()["results"][0][
        "verdict"] == "correct"


def test_3_no_worker_can_start_then_it_can(http, service, fail_flag):
    """A cause that lasts (the grader cannot load): "unavailable" with the reason, requests fail fast with 503 and
    Retry-After, and the service comes back by itself when the cause is gone."""
    fail_flag.touch()
    try:
        for w in worker_pids(service.process.pid):
            os.kill(w, signal.SIGKILL)
        assert wait_until(lambda: health(service)["status"] == "unavailable", 30), health(service)
        h = httpx.get(service.url + "/health")
        assert h.status_code == 503 and "scripted start failure" in h.json()["last_start_error"]
        r = http.post("/v1/score", json={"items": [{"completion": "\\boxed{1}", "gold": "1"}]})
        assert r.status_code == 503 and "no grading worker can start" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
        assert metric(http, "pool_unavailable") == 1
    finally:
        fail_flag.unlink()
    assert wait_until(lambda: health(service)["status"] == "ok", 30), health(service)
    with RewardClient(service.url, token=TOKEN) as c:
        assert c.rewards(["so \\boxed{3}"], ["3"]) == [1.0]
