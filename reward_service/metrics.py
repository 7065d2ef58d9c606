"""Prometheus metrics of the reward service (served at ``GET /metrics``).

Request-level series are updated by the app; pool-level series (timeouts, retries, restarts, per-item grading
time, cache) are read from ``GradingPool.stats`` and the body budget when scraped, so the pool itself stays free
of web dependencies.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from reward_service.guard import BodyBudget
from reward_service.pool import ITEM_SECONDS_BUCKETS, GradingPool

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "mathrl_reward"
KNOWN_PATHS = ("/v1/score", "/get_reward", "/v1/schemes", "/health", "/metrics")


class _StateCollector:
    def __init__(self, pool: GradingPool, budget: BodyBudget):
        self.pool = pool
        self.budget = budget

    def collect(self):
        s = self.pool.stats
        b = self.budget
        yield GaugeMetricFamily(f"{PREFIX}_workers_ready", "Grading worker processes ready", value=self.pool.ready_workers)
        yield GaugeMetricFamily(f"{PREFIX}_queue_depth", "Items waiting for a grading worker", value=self.pool.queue_depth)
        yield GaugeMetricFamily(f"{PREFIX}_pool_unavailable", "1 while no grading worker can start (requests get 503)",
                                value=1 if self.pool.state == "unavailable" else 0)
        yield GaugeMetricFamily(f"{PREFIX}_body_bytes_in_progress", "Bytes of request bodies held (max_pending_body_bytes)",
                                value=b.used)
        yield GaugeMetricFamily(f"{PREFIX}_body_bytes_peak", "Most bytes of request bodies held at once", value=b.peak)
        for name, doc, value in (
            ("body_waits", "Requests that waited for their share of max_pending_body_bytes", b.waits),
            ("body_refused", "Requests refused (503) for want of max_pending_body_bytes within body_timeout", b.refused),
            ("timeouts", "Items over the time limit on two workers (graded wrong, reason timeout)", s.timeouts),
            ("timeout_retries", "Items run again on another worker after their worker hung past the limit",
             s.timeout_retries),
            ("worker_crashes", "Grading workers that died while grading", s.crashes),
            ("crash_verdicts", "Items graded wrong because they killed a worker twice", s.crash_verdicts),
            ("grader_errors", "Items on which the grading function raised", s.grader_errors),
            ("retries", "Items run again after their worker died", s.retries),
            ("worker_restarts", "Replacement grading workers started", s.restarts),
            ("worker_startup_failures", "Grading workers that failed to start", s.startup_failures),
            ("cache_hits", "Items answered from the result cache", s.cache_hits),
            ("cache_misses", "Items sent to a grading worker", s.cache_misses),
        ):
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)
        verdicts = CounterMetricFamily(f"{PREFIX}_pool_verdicts", "Verdicts produced by the pool", labels=["verdict"])
        for v, n in s.verdicts.items():
            verdicts.add_metric([v], n)
        yield verdicts
        cum, buckets = 0, []
        for ub, n in zip(list(ITEM_SECONDS_BUCKETS) + [float("inf")], s.item_seconds_buckets):
            cum += n
            buckets.append((str(ub) if ub != float("inf") else "+Inf", cum))
        yield HistogramMetricFamily(f"{PREFIX}_item_grading_seconds", "Grading time of one item inside a worker",
                                    buckets=buckets, sum_value=s.item_seconds_sum)


class ServiceMetrics:
    def __init__(self, pool: GradingPool, budget: BodyBudget):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(f"{PREFIX}_requests", "HTTP requests", ["path", "status"], registry=r)
        self.latency = Histogram(
            f"{PREFIX}_request_seconds", "HTTP request latency", ["path"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.items = Counter(f"{PREFIX}_items", "Items scored", ["scheme", "verdict"], registry=r)
        self.batch_size = Histogram(f"{PREFIX}_batch_size", "Items per scoring request", registry=r,
                                    buckets=(1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768))
        r.register(_StateCollector(pool, budget))

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        path = path if path in KNOWN_PATHS else "other"
        self.requests.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)

    def observe_items(self, scheme_names: list, verdicts: list) -> None:
        counts: dict = {}
        for s, v in zip(scheme_names, verdicts):
            counts[(s, v)] = counts.get((s, v), 0) + 1
        for (s, v), n in counts.items():
            self.items.labels(s, v).inc(n)
        self.batch_size.observe(len(verdicts))

    def render(self) -> bytes:
        return generate_latest(self.registry)
