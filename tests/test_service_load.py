"""The reward service with its default limits under the loads issues 12 and 16 name, over real HTTP.

* One OpenRLHF-0.9-style whole rollout batch (16384 queries of realistic length, 5 % with a left-truncated
  prompt) on ``/get_reward``: accepted by default, graded like ``/v1/score`` grades the responses, /health
  answered throughout (``benchmarks/bench_openrlhf_batch.py`` times it).
* 200 concurrent clients with mixed batch sizes (``benchmarks/bench_load.py`` measures the issue's figures over
  30 s; here 8 s with bounds loose enough for a shared 2-core machine).
"""
from __future__ import annotations

import json
import socket

import httpx
import pytest

from benchmarks.bench_load import run_load
from benchmarks.bench_openrlhf_batch import build_batch, post_batch
from reward_service.client import start_service
from reward_service.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service():
    # the default size limits; a generous per-item time limit, so a loaded machine cannot turn a slow item into a
    # timeout (timeouts have their own tests: test_pool, test_service_chaos)
    svc = start_service(workers=2, timeout=30, args=["--log-level", "warning"])
    yield svc
    svc.stop()


def test_a_whole_openrlhf_batch_is_accepted_by_default(service):
    """Regression: OpenRLHF 0.9.0 posts the whole rollout batch; max_items 4096 answered 413 and the run died."""
    batch = build_batch(16384, seed=7, truncated=0.05)
    out, figures = post_batch(service.url, batch)
    assert len(out["rewards"]) == 16384 and figures["timeouts"] == 0
    assert figures["body_mb"] > 32  # realistic lengths (the old body limit was 32 MiB)
    cut = set(batch["truncated"])
    assert [i for i, f in enumerate(out["extra_logs"]["prompt_not_found"]) if f] == sorted(cut)
    assert out["extra_logs"]["split_at_assistant_marker"] == out["extra_logs"]["prompt_not_found"]
    # the graded text is the response: the same rewards as scoring the responses themselves
    with httpx.Client(base_url=service.url, timeout=600) as c:
        items = [{"completion": r, "gold": g} for r, g in zip(batch["responses"], batch["labels"])]
        direct = [x["reward"] for k in range(0, len(items), 8192)
                  for x in c.post("/v1/score", json={"items": items[k:k + 8192]}).json()["results"]]
    assert out["rewards"] == direct
    assert figures["health_failures"] == 0 and figures["health_during"]["max_ms"] < 1000, figures


def test_past_the_limits_is_413_naming_the_limit(service):
    s = Settings()
    body = json.dumps({"query": ["q"] * (s.max_items + 1), "labels": ["1"] * (s.max_items + 1)})
    r = httpx.post(service.url + "/get_reward", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "max_items" in r.json()["detail"] and "--max-items" in r.json()["detail"]
    port = int(service.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:  # declared too large: refused unread
        sock.sendall(f"POST /get_reward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {s.max_body_bytes + 1}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(4096):  # the reply says "connection: close": read until the server closes
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 413") and "max_body_bytes" in reply and "--max-body-bytes" in reply


def test_200_clients_mixed_batches(service):
    """Regression: one FIFO queue made a 1-item request wait ~15 s behind 256-item batches; /health took 438 ms."""
    res = run_load(service.url, clients=200, seconds=8, procs=2)
    assert res["errors"] == 0, res["first_errors"]
    assert res["latency_by_batch_size"]["256"]["n"] > 0  # large batches flowed
    assert res["probe_one_item_failures"] == 0 and res["probe_health_failures"] == 0
    # loose bounds (the issue's: 1 s and 50 ms, measured by benchmarks/bench_load.py on 30 s)
    assert res["probe_one_item"]["p99_ms"] < 3000, res
    assert res["latency_by_batch_size"]["1"]["p50_ms"] < 1000, res
    assert res["probe_health"]["p99_ms"] < 500, res
