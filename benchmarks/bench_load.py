"""Load test of the reward service: many concurrent clients with mixed batch sizes, over real HTTP.

    .venv/bin/python -m benchmarks.bench_load                        # 200 clients x 30 s, 2 workers
    .venv/bin/python -m benchmarks.bench_load --clients 200 --seconds 30 --workers 2 --json load.json

Issue 16's targets: 0 errors, p99 of 1-item requests < 1 s while 256-item batches flow, /health p99 < 50 ms.

Processes (so that no measurement waits for the load generator's own event loop):
* the service (``start_service``: uvicorn + its grading workers), unless ``--url`` names a running one;
* ``--procs`` load processes sharing ``--clients`` closed-loop clients. Each client holds one keep-alive
  connection (a minimal HTTP/1.1 client on asyncio streams: httpx's connection pool costs more CPU per request
  than the server does, and the generator's own delays would count as server latency) and sends
  ``POST /v1/score`` requests one after the other, batch sizes drawn from ``SIZES`` (1, 16, 64 or 256 items),
  items from the realistic mix of ``bench_reward_service`` (MATH-500, GSM8K, AIME, OlympiadBench golds; ~1 %
  pathological) made unique per request so the result cache never answers;
* a probe that polls ``GET /health`` every 20 ms, and a probe that sends 1-item requests one at a time, each in
  a process of its own (``Probe``, also used by the tests).

Reported: requests, errors (any non-200 or a reply of the wrong length), items/s (of the requests answered within
the run; the requests still running at its end are awaited and counted in the latencies), latency
p50/p99/max per batch size (as the load clients see it), the probes' latencies, the load generators' own event-loop lag (how late a
10 ms timer fired: when it is large the clients' figures include the generator's delays), the server's RSS
before and after, and the pool's timeout / retry counters.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import random
import sys
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import httpx

from benchmarks.bench_reward_service import build_mix, pct, request_items
from benchmarks.procs import rss_mb

SIZES = {1: 0.4, 16: 0.3, 64: 0.2, 256: 0.1}  # batch size: share of requests
BASE_ITEMS = 4000


def _unique(base: list[dict], tag: str, rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        it = dict(base[rng.randrange(len(base))])
        it["completion"] = f"[{tag}.{i}] " + it["completion"]
        out.append(it)
    return out


class _Connection:
    """One keep-alive HTTP/1.1 connection: POST a JSON body, read the status and the body (Content-Length)."""

    def __init__(self, url: str, headers: dict):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = f"Host: {self.host}:{self.port}\r\nContent-Type: application/json\r\n{extra}"
        self.reader = self.writer = None

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(payload)}\r\n\r\n".encode()
                              + payload)
            status = int((await self.reader.readline()).split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            body = await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _lag_monitor(end: float, lags: list) -> None:
    while time.monotonic() < end:
        t0 = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - t0 - 0.01)


async def _clients(url: str, headers: dict, first: int, n: int, seconds: float, sizes: dict, seed: int) -> tuple:
    base = request_items(build_mix(BASE_ITEMS, seed=seed))
    end = time.monotonic() + seconds
    records: list = []
    lags: list = []

    async def client(cid: int) -> None:
        rng = random.Random(seed * 100_003 + cid)
        conn = _Connection(url, headers)
        k = 0
        while time.monotonic() < end:
            size = rng.choices(list(sizes), list(sizes.values()))[0]
            payload = json.dumps({"items": _unique(base, f"load {seed}.{cid}.{k}", rng, size)}).encode()
            k += 1
            t0 = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(conn.post("/v1/score", payload), 300)
                ok = status == 200 and len(json.loads(body)["results"]) == size
                err = None if ok else f"{status}: {body[:200]!r}"
            except Exception as e:  # a refused or dropped connection is an error too
                err = f"{type(e).__name__}: {e}"
            records.append((size, time.perf_counter() - t0, err, time.monotonic() <= end))
        conn.close()

    await asyncio.gather(_lag_monitor(end, lags), *(client(c) for c in range(first, first + n)))
    return records, lags


def _load_proc(url, headers, first, n, seconds, sizes, seed, out):
    records, lags = asyncio.run(_clients(url, headers, first, n, seconds, sizes, seed))
    out.put(("load", records))
    out.put(("lag", lags))


def _probe_proc(url, headers, kind, period, started, stop, out):
    lat = []
    k = 0
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            if kind == "health":
                ok = c.get("/health").status_code == 200
            else:
                k += 1
                r = c.post("/v1/score", json={"items": [{"completion": f"probe {k}: so \\boxed{{{k}}}", "gold": str(k)}]})
                ok = r.status_code == 200 and r.json()["results"][0]["verdict"] == "correct"
            lat.append((time.perf_counter() - t0, ok))
            started.set()
            stop.wait(period)
    out.put((kind, lat))


class Probe:
    """Times requests from a process of its own until stopped: ``GET /health`` (``kind="health"``) or 1-item
    ``POST /v1/score`` (``kind="one"``), one every ``period`` seconds. ``latencies`` / ``failures`` after exit.

        with Probe(url) as probe:
            ...                                   # the load
        probe.summary()                           # {"n", "p50_ms", "p99_ms", "max_ms"}
    """

    def __init__(self, url: str, headers: Optional[dict] = None, kind: str = "health", period: float = 0.02):
        ctx = mp.get_context("spawn")
        self._started, self._stop, self._out = ctx.Event(), ctx.Event(), ctx.Queue()
        self._proc = ctx.Process(target=_probe_proc, daemon=True,
                                 args=(url, headers or {}, kind, period, self._started, self._stop, self._out))
        self.latencies: list = []
        self.failures = 0

    def __enter__(self) -> "Probe":
        self._proc.start()
        if not self._started.wait(120):  # its first request is done: it is polling
            raise RuntimeError("the probe process did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        _, lat = self._out.get(timeout=120)
        self._proc.join(30)
        self.latencies = [t for t, _ in lat]
        self.failures = sum(not ok for _, ok in lat)

    def summary(self) -> dict:
        return _ms(self.latencies)


def _ms(xs: list) -> dict:
    return {"n": len(xs), "p50_ms": round(1000 * pct(xs, 50), 1), "p99_ms": round(1000 * pct(xs, 99), 1),
            "max_ms": round(1000 * max(xs), 1) if xs else None}


def scrape(url: str, headers: dict, names: tuple) -> dict:
    text = httpx.get(url + "/metrics", headers=headers, timeout=10).text
    out = {}
    for name in names:
        for line in text.splitlines():
            if line.startswith(f"mathrl_reward_{name} ") or line.startswith(f"mathrl_reward_{name}_total "):
                out[name] = float(line.split()[-1])
    return out


def run_load(url: str, clients: int = 200, seconds: float = 30.0, procs: int = 2, sizes: Optional[dict] = None,
             token: Optional[str] = None, seed: int = 0) -> dict:
    """Drive the service at ``url`` and return the figures (see the module docstring)."""
    sizes = sizes or SIZES
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    before = scrape(url, headers, ("timeouts", "timeout_retries", "retries"))
    jobs = [ctx.Process(target=_load_proc, args=(url, headers, sum(per[:i]), per[i], seconds, sizes, seed + i, out))
            for i in range(procs) if per[i]]
    t0 = time.monotonic()
    with Probe(url, headers, "health", 0.02) as health, Probe(url, headers, "one", 0.05) as one:
        for j in jobs:
            j.start()
        parts = [out.get(timeout=seconds + 600) for _ in range(2 * len(jobs))]  # records and lags of each
    wall = time.monotonic() - t0
    for j in jobs:
        j.join(30)
    records = [r for kind, part in parts if kind == "load" for r in part]  # (size, seconds, error, done in time)
    lags = [x for kind, part in parts if kind == "lag" for x in part]
    after = scrape(url, headers, ("timeouts", "timeout_retries", "retries"))
    errors = [e for _, _, e, _ in records if e]
    by_size = {str(s): _ms([t for n, t, e, _ in records if n == s and not e]) for s in sorted(sizes)}
    return {
        "clients": clients, "seconds": seconds, "wall_s": round(wall, 1), "requests": len(records),
        "requests_finished_after_the_end": sum(not in_time for *_, in_time in records),
        "errors": len(errors), "first_errors": errors[:5],
        "items_per_s": round(sum(n for n, _, e, in_time in records if not e and in_time) / seconds, 1),
        "latency_by_batch_size": by_size,
        "probe_health": health.summary(), "probe_health_failures": health.failures,
        "probe_one_item": one.summary(), "probe_one_item_failures": one.failures,
        "generator_loop_lag": _ms(lags),
        "pool": {k: after.get(k, 0) - before.get(k, 0) for k in after},
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running service (default: start one)")
    ap.add_argument("--token")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--procs", type=int, default=2, help="load-generating processes")
    ap.add_argument("--workers", type=int, default=2, help="grading workers of the started service")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-item limit of the started service")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    from reward_service.client import start_service

    svc = None
    url = args.url
    if url is None:
        svc = start_service(workers=args.workers, timeout=args.timeout, token=args.token,
                            args=["--log-level", "warning"])
        url = svc.url
    try:
        rss0 = rss_mb(svc.process.pid) if svc else None
        res = run_load(url, clients=args.clients, seconds=args.seconds, procs=args.procs, token=args.token)
        res["server_rss_mb"] = {"before": rss0, "after": rss_mb(svc.process.pid) if svc else None}
    finally:
        if svc:
            svc.stop()
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    ok = (res["errors"] == 0 and res["probe_one_item"]["p99_ms"] < 1000 and res["latency_by_batch_size"]["1"]["p99_ms"] < 1000
          and res["probe_health"]["p99_ms"] < 50)
    print(f"targets (0 errors, 1-item p99 < 1 s, /health p99 < 50 ms): {'met' if ok else 'NOT met'}", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
