"""Replay issue 16's red-team attacks on the reward service and print what happens, with numbers.

    .venv/bin/python -m benchmarks.redteam_service [--json out.json]

A real service (2 workers, the real grader, 2 s limit, a non-ASCII token, ``--body-timeout 5`` so the upload
attack takes seconds, not minutes) on loopback; /health is timed from a probe process (``bench_load.Probe``).
The same attacks, with pass/fail bounds, are tests/test_service_chaos.py; the load figures (attack 7, 200
clients) are ``benchmarks.bench_load``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx

from benchmarks.bench_load import Probe
from benchmarks.procs import kill_workers, rss_mb, worker_pids
from reward_service.client import RewardClient, start_service

TOKEN = "tökén-密码"
AUTH = {"Authorization": b"Bearer " + TOKEN.encode("utf-8")}


def prompt_search(url: str) -> dict:
    """1: a prompt that is not in its 0.3 MB query (quadratic for a regex search: 6-9 s, /health as slow)."""
    body = {"query": [("a" * 2999 + "b") * 100], "prompts": ["a " * 3000], "labels": ["1"]}
    with Probe(url) as probe:
        t0 = time.perf_counter()
        r = httpx.post(url + "/get_reward", json=body, headers=AUTH, timeout=600)
        seconds = time.perf_counter() - t0
    return {"status": r.status_code, "seconds": round(seconds, 3), "health_during": probe.summary()}


def pool_heals(url: str, pid: int, kill_for: float = 3.0) -> dict:
    """3: kill both workers, then every replacement before it reports ready, for ``kill_for`` seconds."""
    kills, seen = 0, set()
    end = time.monotonic() + kill_for
    while time.monotonic() < end and kills < 1000:
        kills += kill_workers(pid)
        seen.add(httpx.get(url + "/health").json()["status"])
        time.sleep(0.01)
    t0 = time.monotonic()
    while httpx.get(url + "/health").json()["status"] != "ok" and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    healed = time.monotonic() - t0
    r = httpx.post(url + "/v1/score", json={"items": [{"completion": "\\boxed{1}", "gold": "1"}]}, headers=AUTH)
    return {"kills": kills, "health_states_seen": sorted(seen), "ok_again_after_s": round(healed, 2),
            "score_status_after": r.status_code}


def stopped_worker(url: str, pid: int, n: int = 3000) -> dict:
    """5: SIGSTOP a worker in the middle of a batch of correct answers."""
    while len(worker_pids(pid)) < 2:
        time.sleep(0.05)
    items = [{"completion": f"Step {i}: we get \\boxed{{\\frac{{{i}}}{{{i + 1}}}}}", "gold": f"{i}/{i + 1}"}
             for i in range(n)]
    out = {}
    t = threading.Thread(target=lambda: out.update(r=httpx.post(url + "/v1/score", json={"items": items},
                                                                headers=AUTH, timeout=600)))
    t0 = time.perf_counter()
    t.start()
    time.sleep(0.3)
    os.kill(worker_pids(pid)[0], signal.SIGSTOP)
    t.join()
    res = out["r"].json()["results"]
    return {"items": n, "seconds": round(time.perf_counter() - t0, 2),
            "correct": sum(x["verdict"] == "correct" for x in res), "timed_out": sum(x["timed_out"] for x in res),
            "retried": sum(x["retries"] for x in res)}


def unfinished_uploads(url: str, pid: int, body_timeout: float, rounds: int = 2) -> dict:
    """6: 20 connections holding unfinished 30 MB uploads, twice."""
    port = int(url.rsplit(":", 1)[1])
    out = {"rss_mb_before": round(rss_mb(pid), 1), "rounds": []}
    chunk = b"x" * (1 << 20)
    for _ in range(rounds):
        socks = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 30000000\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
            s.settimeout(0.2)
            sent = 0
            try:
                while sent < 29_000_000:
                    sent += s.send(chunk)
            except socket.timeout:
                pass
            socks.append(s)
        time.sleep(1.0)
        held = rss_mb(pid)
        statuses = []
        deadline = time.monotonic() + body_timeout + 10
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                statuses.append(int(s.recv(4096).split()[1]))
            except (OSError, IndexError):
                statuses.append(None)
            s.close()
        time.sleep(1.0)
        out["rounds"].append({"rss_mb_while_held": round(held, 1), "rss_mb_after": round(rss_mb(pid), 1),
                              "answers": {str(k): statuses.count(k) for k in sorted(set(statuses), key=str)}})
    return out


def big_body(url: str, n: int = 10000) -> dict:
    """7 (one request): /health during a single ~32 MB body."""
    items = [{"completion": "a" * 3000 + f" {i} \\boxed{{1}}", "gold": "1"} for i in range(n)]
    payload = json.dumps({"items": items}).encode()
    with Probe(url) as probe:
        r = httpx.post(url + "/v1/score", content=payload, headers={**AUTH, "content-type": "application/json"},
                       timeout=600)
    return {"body_mb": round(len(payload) / 2**20, 1), "status": r.status_code, "health_during": probe.summary()}


def malformed(url: str) -> dict:
    """8: malformed bodies and a non-ASCII token."""
    out = {}
    for name, body in (("not UTF-8", b'\xff\xfe{"items": []}'), ("truncated JSON", b'{"items": [')):
        r = httpx.post(url + "/v1/score", content=body, headers={**AUTH, "content-type": "application/json"})
        out[name] = f"{r.status_code} {r.json().get('message', '')[:90]}"
    with RewardClient(url, token=TOKEN) as c:
        rewards = c.rewards(["so \\boxed{2}"], ["2"])
    out["non-ASCII token"] = f"rewards {rewards}"
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--body-timeout", type=float, default=5.0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    svc = start_service(workers=2, timeout=2.0, token=TOKEN,
                        args=["--body-timeout", str(args.body_timeout), "--log-level", "warning"])
    pid = svc.process.pid
    try:
        res = {"load_avg_at_start": os.getloadavg(),
               "1_prompt_search": prompt_search(svc.url),
               "8_malformed": malformed(svc.url),
               "7_health_during_32MB_body": big_body(svc.url),
               "5_stopped_worker": stopped_worker(svc.url, pid),
               "6_unfinished_uploads": unfinished_uploads(svc.url, pid, args.body_timeout),
               "3_pool_heals": pool_heals(svc.url, pid)}
    finally:
        svc.stop()
    print(json.dumps(res, indent=2, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, ensure_ascii=False))
    return res


if __name__ == "__main__":
    main()
