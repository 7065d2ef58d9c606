"""The HTTP API (FastAPI). Nothing heavy runs on the event loop.

Endpoints: ``POST /v1/score``, ``POST /get_reward`` (OpenRLHF's remote reward protocol), ``GET /v1/schemes``,
``GET /health``, ``GET /metrics`` (Prometheus), ``GET /docs`` (OpenAPI). See docs/reward_service.md.

A scoring request goes: ``GuardMiddleware`` (auth, the body read under byte and time limits) -> parsing,
validation and prompt splitting in steps on the request thread (``offload``) -> grading in the worker pool
(fair across requests) -> rewards and the JSON reply in steps on the request thread -> sent by the loop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from contextlib import asynccontextmanager
from typing import Any, Generator, Optional

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic.json_schema import models_json_schema

from reward_service import __version__
from reward_service.grading import CORRECT, NO_ANSWER, Grade
from reward_service.guard import BODY_KEY, BodyBudget, GuardMiddleware
from reward_service.metrics import CONTENT_TYPE, ServiceMetrics
from reward_service.offload import StepRunner
from reward_service.payloads import (
    RequestInvalid,
    RewardRequest,
    RewardResponse,
    ScoreRequest,
    ScoreResponse,
    TooManyItems,
    parse_reward_request,
    parse_score_request,
)
from reward_service.pool import ERROR, INVALID, TIMEOUT_REASON, GradedBatch, GradeItem, GradingPool, GradingPoolError
from reward_service.prompt_split import split_response
from reward_service.rewards import RewardScheme, SchemeRegistry, UnknownSchemeError, openrlhf_score
from reward_service.settings import Settings

log = logging.getLogger("reward_service.app")

_STEP = 512  # items handled between two yields of the request thread
SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another one waits for it


class InvalidGold(Exception):
    """The grader rejected some golds (e.g. ``"#### "``): the request's mistake, 422."""

    def __init__(self, errors: list):
        super().__init__("invalid gold")
        self.errors = errors


class SchemeFailed(Exception):
    """A reward scheme (plugin) raised or returned a non-finite reward."""


class GraderFailed(Exception):
    def __init__(self, failed: list):
        super().__init__(f"grading failed on {len(failed)} items")
        self.failed = failed


def _check_grades(grades: list, gold_loc: str) -> None:
    failed = [{"index": i, "reason": g.reason} for i, g in enumerate(grades) if g.verdict == ERROR]
    if failed:  # a grader bug is not a verdict: fail loudly (clients retry 5xx, then raise)
        log.error("grading function failed on %d of %d items, first: %s", len(failed), len(grades), failed[0])
        raise GraderFailed(failed)
    invalid = [{"loc": gold_loc.format(i), "msg": g.reason, "type": "invalid_gold"}
               for i, g in enumerate(grades) if g.verdict == INVALID]
    if invalid:
        raise InvalidGold(invalid)


def _rewards(schemes: list[RewardScheme], grades: list[Grade], completions: list, golds: list) -> Generator:
    """Each item's reward under its scheme; a plugin that raises or returns a non-finite number is a 500."""
    out = []
    for i, (s, g, c, gold) in enumerate(zip(schemes, grades, completions, golds)):
        try:
            r = s(g, c, gold)
        except Exception as e:
            raise SchemeFailed(f"reward scheme {s.name!r} raised on item {i}: {type(e).__name__}: {e}") from e
        if not math.isfinite(r):
            raise SchemeFailed(f"reward scheme {s.name!r} returned {r} for item {i}")
        out.append(float(r))
        if i % _STEP == _STEP - 1:
            yield
    return out


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=True, allow_nan=False).encode()


def create_app(settings: Optional[Settings] = None, pool: Optional[GradingPool] = None) -> FastAPI:
    """Build the app. The grading pool starts in the lifespan (or pass one; it is then not closed here)."""
    settings = settings or Settings.from_env()
    registry = SchemeRegistry(format_bonus=settings.format_bonus, default=settings.default_scheme)
    if settings.entry_points:
        registry.load_entry_points()
    for spec in settings.plugins:
        registry.load_plugin(spec)
    metrics_ref: dict = {}
    state: dict[str, Any] = {"pool": pool}
    budget = BodyBudget(settings.max_pending_body_bytes)
    runner: dict[str, StepRunner] = {}  # the request thread, started with the app

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The request thread and the pool's dispatcher share the GIL with the event loop, which waits for it at
        # every turn; at the default 5 ms per hand-over a /health answer took tens of ms under load.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        runner["steps"] = StepRunner()
        own = state["pool"] is None
        if own:
            state["pool"] = GradingPool(workers=settings.workers, timeout=settings.timeout, grader=settings.grader,
                                        cache_size=settings.cache_size, worker_nice=settings.worker_nice,
                                        restart_backoff_max=settings.restart_backoff_max)
        p: GradingPool = state["pool"]
        metrics_ref["metrics"] = ServiceMetrics(p, budget)
        # Serve once every worker is ready (predictable latency from the first request); settle for one after
        # a while rather than not serving at all.
        ok = await asyncio.to_thread(p.wait_ready, 120, settings.workers) or await asyncio.to_thread(p.wait_ready, 180)
        if not ok:
            if own:
                p.close()
            raise RuntimeError(f"grading workers failed to start: {p.broken or 'timed out'}")
        log.info("reward service ready: %s", settings.public())
        try:
            yield
        finally:
            runner.pop("steps").close()
            if own:
                await asyncio.to_thread(p.close)

    app = FastAPI(
        title="mathrl reward service",
        version=__version__,
        description="Grades math completions against gold answers and turns verdicts into rewards.",
        lifespan=lifespan,
    )
    app.add_middleware(GuardMiddleware, settings=settings, metrics_ref=metrics_ref, budget=budget)
    app.state.settings = settings
    app.state.registry = registry
    app.state.pool_ref = state
    _document_bodies(app)

    @app.exception_handler(RequestInvalid)
    async def _invalid(request: Request, exc: RequestInvalid):
        summary = exc.summary()
        ctype = request.headers.get("content-type", "")
        if ctype and "json" not in ctype:
            summary += f" (the body must be JSON: send 'Content-Type: application/json', not {ctype!r})"
        return JSONResponse({"detail": exc.errors, "message": summary}, status_code=422)

    @app.exception_handler(InvalidGold)
    async def _invalid_gold(request: Request, exc: InvalidGold):
        return JSONResponse({"detail": exc.errors, "message": "; ".join(f"{e['loc']}: {e['msg']}"
                                                                         for e in exc.errors[:5])}, status_code=422)

    @app.exception_handler(TooManyItems)
    async def _too_many(request: Request, exc: TooManyItems):
        return JSONResponse({"detail": str(exc)}, status_code=413)

    @app.exception_handler(UnknownSchemeError)
    async def _unknown_scheme(request: Request, exc: UnknownSchemeError):
        return JSONResponse({"detail": str(exc), "known_schemes": exc.known}, status_code=400)

    @app.exception_handler(GraderFailed)
    async def _grader_failed(request: Request, exc: GraderFailed):
        return JSONResponse({"detail": f"the grading function failed on {len(exc.failed)} items; no rewards were "
                                       f"computed (first: item {exc.failed[0]['index']}: {exc.failed[0]['reason']})",
                             "errors": exc.failed[:20]}, status_code=500)

    @app.exception_handler(SchemeFailed)
    async def _scheme_failed(request: Request, exc: SchemeFailed):
        log.error("%s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.exception_handler(GradingPoolError)
    async def _pool_error(request: Request, exc: GradingPoolError):
        nxt = state["pool"].health()["next_start_in_s"] if state["pool"] is not None else None
        return JSONResponse({"detail": f"grading unavailable: {exc}"}, status_code=503,
                            headers={"Retry-After": str(max(1, math.ceil(nxt or 1)))})

    def record(schemes: list[RewardScheme], grades: GradedBatch) -> None:
        m = metrics_ref.get("metrics")
        if m is not None:
            m.observe_items([s.name for s in schemes], [g.verdict for g in grades])

    def submit(items: list[GradeItem], keys: list):
        return state["pool"].submit(items, keys=keys)  # per-item work: called on the request thread

    def prepare_score(body: bytes) -> Generator:
        job = yield from parse_score_request(body, settings.max_items)
        default = registry.get(job.scheme)
        schemes, items, keys = [], [], []
        for i, it in enumerate(job.items):
            s = registry.get(it.scheme) if it.scheme else default
            gi = GradeItem(it.completion, it.gold, s.last_number_fallback)
            schemes.append(s)
            items.append(gi)
            keys.append(GradingPool.cache_key(gi))
            if i % _STEP == _STEP - 1:
                yield
        return job, schemes, submit(items, keys)

    def finish_score(job, schemes: list, grades: GradedBatch) -> Generator:
        _check_grades(grades, "items.{}.gold")
        rewards = yield from _rewards(schemes, grades, [it.completion for it in job.items], [it.gold for it in job.items])
        results = [{"reward": r, "verdict": g.verdict, "answer": g.answer, "reason": g.reason,
                    "timed_out": g.reason == TIMEOUT_REASON, "retries": n}
                   for r, g, n in zip(rewards, grades, grades.retries)]
        yield
        record(schemes, grades)
        return _json_bytes({"results": results})

    @app.post("/v1/score", response_model=ScoreResponse, responses={
        400: {"description": "unknown scheme"}, 413: {"description": "too large"}, 422: {"description": "malformed"}})
    async def score(request: Request):
        """Grade each item and return its reward, verdict, extracted answer and reason, in input order."""
        run = runner["steps"].run
        job, schemes, pending = await run(prepare_score(request.scope[BODY_KEY]))
        grades = await asyncio.wrap_future(pending)  # cancelled with the request: its queued items are dropped
        return Response(await run(finish_score(job, schemes, grades)), media_type="application/json")

    def prepare_reward(body: bytes) -> Generator:
        job = yield from parse_reward_request(body, settings.max_items)
        scheme = registry.get(job.scheme)
        prompts = job.prompts or [None] * len(job.queries)
        splits, items, keys = [], [], []
        chars = 0
        for q, p, gold in zip(job.queries, prompts, job.labels):
            sp = split_response(q, p)
            gi = GradeItem(sp.response, gold, scheme.last_number_fallback)
            splits.append(sp)
            items.append(gi)
            keys.append(GradingPool.cache_key(gi))
            chars += len(q)
            if chars > 1 << 20 or len(splits) % _STEP == 0:
                chars = 0
                yield
        lost = sum(not sp.prompt_found for sp in splits)
        if lost:
            log.warning("/get_reward: %d of %d prompts not found in their query; graded the text after the last "
                        "assistant-turn marker for %d, the whole query for the others", lost, len(splits),
                        sum(not sp.prompt_found and sp.marker is not None for sp in splits))
        return job, scheme, splits, submit(items, keys)

    def finish_reward(job, scheme: RewardScheme, splits: list, grades: GradedBatch) -> Generator:
        _check_grades(grades, "labels.{}")
        rewards = yield from _rewards([scheme] * len(grades), grades, [sp.response for sp in splits], job.labels)
        record([scheme] * len(grades), grades)
        return _json_bytes({
            "rewards": rewards,
            "scores": [openrlhf_score(g) for g in grades],
            "extra_logs": {
                "accuracy": [1.0 if g.verdict == CORRECT else 0.0 for g in grades],
                "no_answer": [1.0 if g.verdict == NO_ANSWER else 0.0 for g in grades],
                "timeout": [1.0 if g.reason == TIMEOUT_REASON else 0.0 for g in grades],
                "retried": [1.0 if n else 0.0 for n in grades.retries],
                "prompt_not_found": [0.0 if sp.prompt_found else 1.0 for sp in splits],
                "split_at_assistant_marker": [1.0 if sp.marker else 0.0 for sp in splits],
            },
        })

    @app.post("/get_reward", response_model=RewardResponse, responses={
        400: {"description": "unknown scheme"}, 413: {"description": "too large"}, 422: {"description": "malformed"}})
    async def get_reward(request: Request):
        """OpenRLHF remote reward protocol (``--remote_rm_url http://host:port/get_reward``)."""
        run = runner["steps"].run
        job, scheme, splits, pending = await run(prepare_reward(request.scope[BODY_KEY]))
        grades = await asyncio.wrap_future(pending)
        return Response(await run(finish_reward(job, scheme, splits, grades)), media_type="application/json")

    @app.get("/v1/schemes")
    async def schemes():
        """The reward schemes this service knows (append '+format' to any for the format bonus)."""
        return {"default": registry.default, "format_bonus": registry.format_bonus,
                "format_suffix": "+format", "schemes": registry.describe()}

    @app.get("/health")
    async def health():
        """200 while the service can grade (``ok``, or ``degraded`` while workers are replaced); 503 when it
        cannot (``starting``, ``unavailable``: no worker can start and it keeps trying, ``crashed``, ``closed``)."""
        p: Optional[GradingPool] = state["pool"]
        body = p.health() if p is not None else {"status": "starting", "workers_ready": 0, "workers": settings.workers}
        body["body_bytes_in_progress"] = budget.used
        body["version"] = __version__
        return JSONResponse(body, status_code=200 if body["status"] in ("ok", "degraded") else 503)

    @app.get("/metrics")
    async def metrics():
        m = metrics_ref.get("metrics")
        return Response(m.render() if m else b"", media_type=CONTENT_TYPE)

    return app


def _document_bodies(app: FastAPI) -> None:
    """The scoring endpoints read their bodies themselves (in steps): put the request schemas into OpenAPI."""
    bodies = {"/v1/score": ScoreRequest, "/get_reward": RewardRequest}

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema([(m, "validation") for m in bodies.values()],
                                     ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        for path, model in bodies.items():
            schema["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
