"""The HTTP API (FastAPI). Grading runs in the worker pool, never on the event loop.

Endpoints: ``POST /v1/score``, ``POST /get_reward`` (OpenRLHF's remote reward protocol), ``GET /v1/schemes``,
``GET /health``, ``GET /metrics`` (Prometheus), ``GET /docs`` (OpenAPI). See docs/reward_service.md.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema, model_validator

from reward_service import __version__
from reward_service.grading import CORRECT, NO_ANSWER, Grade
from reward_service.metrics import CONTENT_TYPE, ServiceMetrics
from reward_service.pool import ERROR, INVALID, TIMEOUT_REASON, GradeItem, GradingPool, GradingPoolError
from reward_service.rewards import RewardScheme, SchemeRegistry, UnknownSchemeError, openrlhf_score
from reward_service.settings import Settings

log = logging.getLogger("reward_service.app")

PUBLIC_PATHS = frozenset({"/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})

# ----------------------------------------------------------------------------------------------- schemas

GOLD_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "number"},
        {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "number"}]}},
    ]
}
_GOLD_MSG = "gold must be a non-empty string, a number, or a non-empty list of strings/numbers"


def _is_scalar_gold(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, str):
        return bool(x.strip())
    return isinstance(x, (int, float)) and x == x and x not in (float("inf"), float("-inf"))


def _check_gold(v: Any) -> Any:
    if _is_scalar_gold(v) or (isinstance(v, list) and v and all(_is_scalar_gold(x) for x in v)):
        return v
    raise ValueError(f"{_GOLD_MSG}, got {json.dumps(v)[:80]}")


Gold = Annotated[Any, AfterValidator(_check_gold), WithJsonSchema(GOLD_SCHEMA)]


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    completion: StrictStr = Field(description="the model output (or a bare answer)")
    gold: Gold = Field(description="gold answer: a string (LaTeX, a GSM8K rationale ending in '#### N', a solution "
                                   "with \\boxed{}), a number, or a list of accepted answers")
    scheme: Optional[StrictStr] = Field(None, description="reward scheme for this item (overrides the request's)")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scheme: Optional[StrictStr] = Field(None, description="reward scheme (default: the service's default_scheme)")
    items: list[ScoreItem]


class ScoreResult(BaseModel):
    reward: float
    verdict: str = Field(description="correct | wrong | no_answer")
    answer: Optional[str] = Field(description="the extracted final answer")
    reason: str = Field(description="why: e.g. 'equal as rationals', 'no boxed answer', 'timeout'")


class ScoreResponse(BaseModel):
    results: list[ScoreResult]


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request (extra fields it may send are ignored)."""

    model_config = ConfigDict(extra="ignore")
    query: list[StrictStr] = Field(description="prompt + response, as decoded by the trainer")
    prompts: Optional[list[StrictStr]] = Field(None, description="the prompts; each is removed from its query")
    labels: list[Gold] = Field(description="gold answers (OpenRLHF --label_key)")
    scheme: Optional[StrictStr] = None

    @model_validator(mode="after")
    def _same_lengths(self):
        n = len(self.query)
        if len(self.labels) != n:
            raise ValueError(f"'labels' has {len(self.labels)} entries but 'query' has {n}")
        if self.prompts is not None and len(self.prompts) != n:
            raise ValueError(f"'prompts' has {len(self.prompts)} entries but 'query' has {n}")
        return self


class RewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float] = Field(description="1.0 when correct else 0.0 (OpenRLHF dynamic filtering)")
    extra_logs: dict[str, list[float]] = Field(
        description="per-sample flags: accuracy, no_answer, timeout, prompt_not_found (the whole query was graded)")


def split_response(query: str, prompt: Optional[str]) -> tuple[str, bool]:
    """The response part of an OpenRLHF query (the text after its prompt), and whether the prompt was found.

    OpenRLHF decodes prompt+response with special tokens kept, so padding or a BOS token may precede the
    prompt, and detokenization may change whitespace: the prompt is searched for exactly, then with any
    whitespace. When it cannot be found the whole query is graded (and reported in ``extra_logs``).
    """
    if not prompt:
        return query, True
    if query.startswith(prompt):
        return query[len(prompt):], True
    i = query.find(prompt)
    if i >= 0:
        return query[i + len(prompt):], True
    words = prompt.split()
    if words:
        m = re.search(r"\s*".join(re.escape(w) for w in words), query)
        if m:
            return query[m.end():], True
    return query, False


# ------------------------------------------------------------------------------------------ middleware


class InvalidItems(Exception):
    def __init__(self, response: JSONResponse):
        super().__init__("invalid items")
        self.response = response


class SchemeFailed(Exception):
    """A reward scheme (plugin) raised or returned a non-finite reward."""


class GraderFailed(Exception):
    def __init__(self, failed: list):
        super().__init__(f"grading failed on {len(failed)} items")
        self.failed = failed


class GuardMiddleware:
    """Pure ASGI: request metrics, bearer-token auth and the body-size limit, before any body is parsed."""

    def __init__(self, app, settings: Settings, metrics_ref: dict):
        self.app = app
        self.token = settings.token
        self.max_body = settings.max_body_bytes
        self.metrics_ref = metrics_ref

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
                return await _send_json(send_wrapper, 401, {"detail": "missing or wrong bearer token"},
                                        extra_headers=[(b"www-authenticate", b"Bearer")])
            length = _header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                return await _send_json(send_wrapper, 413, {"detail": self._too_large_msg(int(length))})
            received = 0
            max_body = self.max_body

            async def limited_receive():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > max_body:
                        raise HTTPException(413, self._too_large_msg(received, streamed=True))
                return message

            await self.app(scope, limited_receive, send_wrapper)
        finally:
            m = self.metrics_ref.get("metrics")
            if m is not None:
                m.observe_request(path, status["code"], time.perf_counter() - t0)

    def _authorized(self, scope) -> bool:
        got = _header(scope, b"authorization") or ""
        return secrets.compare_digest(got.encode(), f"Bearer {self.token}".encode())

    def _too_large_msg(self, n: int, streamed: bool = False) -> str:
        what = f"more than {self.max_body}" if streamed else str(n)
        return f"request body of {what} bytes is over the limit of {self.max_body} bytes (max_body_bytes)"


def _header(scope, name: bytes) -> Optional[str]:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


async def _send_json(send, status: int, body: dict, extra_headers=()):
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra_headers)})
    await send({"type": "http.response.body", "body": data})


# ------------------------------------------------------------------------------------------------ app


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

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = state["pool"] is None
        if own:
            state["pool"] = GradingPool(workers=settings.workers, timeout=settings.timeout, grader=settings.grader,
                                        cache_size=settings.cache_size)
        p: GradingPool = state["pool"]
        metrics_ref["metrics"] = ServiceMetrics(p)
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
            if own:
                await asyncio.to_thread(p.close)

    app = FastAPI(
        title="mathrl reward service",
        version=__version__,
        description="Grades math completions against gold answers and turns verdicts into rewards.",
        lifespan=lifespan,
    )
    app.add_middleware(GuardMiddleware, settings=settings, metrics_ref=metrics_ref)
    app.state.settings = settings
    app.state.registry = registry
    app.state.pool_ref = state

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            typ, msg = e.get("type", ""), e.get("msg", "invalid")
            if typ == "json_invalid":
                pos = [x for x in e.get("loc", ()) if isinstance(x, int)]
                loc = f"body (character {pos[0]})" if pos else "body"
                msg = f"malformed JSON: {(e.get('ctx') or {}).get('error', msg)}"
            else:
                loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
                msg = msg.removeprefix("Value error, ")
            errors.append({"loc": loc, "msg": msg, "type": typ})
        summary = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5])
        ctype = request.headers.get("content-type", "")
        if ctype and "json" not in ctype:
            summary += f" (the body must be JSON: send 'Content-Type: application/json', not {ctype!r})"
        return JSONResponse({"detail": errors, "message": summary}, status_code=422)

    @app.exception_handler(UnknownSchemeError)
    async def _unknown_scheme(request: Request, exc: UnknownSchemeError):
        return JSONResponse({"detail": str(exc), "known_schemes": exc.known}, status_code=400)

    @app.exception_handler(GraderFailed)
    async def _grader_failed(request: Request, exc: GraderFailed):
        return JSONResponse({"detail": f"the grading function failed on {len(exc.failed)} items; no rewards were "
                                       f"computed (first: item {exc.failed[0]['index']}: {exc.failed[0]['reason']})",
                             "errors": exc.failed[:20]}, status_code=500)

    @app.exception_handler(InvalidItems)
    async def _invalid_items(request: Request, exc: InvalidItems):
        return exc.response

    @app.exception_handler(SchemeFailed)
    async def _scheme_failed(request: Request, exc: SchemeFailed):
        log.error("%s", exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.exception_handler(GradingPoolError)
    async def _pool_error(request: Request, exc: GradingPoolError):
        return JSONResponse({"detail": f"grading unavailable: {exc}"}, status_code=503)

    def check_size(n: int) -> None:
        if n > settings.max_items:
            raise HTTPException(413, f"{n} items is over the limit of {settings.max_items} per request (max_items); "
                                     "split the batch")

    async def grade(items: list[GradeItem], gold_loc: str) -> list[Grade]:
        grades = await state["pool"].agrade_many(items, on_error="return")
        failed = [{"index": i, "reason": g.reason} for i, g in enumerate(grades) if g.verdict == ERROR]
        if failed:  # a grader bug is not a verdict: fail loudly (clients retry 5xx, then raise)
            log.error("grading function failed on %d of %d items, first: %s", len(failed), len(grades), failed[0])
            raise GraderFailed(failed)
        invalid = [(i, g.reason) for i, g in enumerate(grades) if g.verdict == INVALID]
        if invalid:  # e.g. an empty gold: the request's mistake (422), found by the grader
            errors = [{"loc": gold_loc.format(i), "msg": reason, "type": "invalid_gold"} for i, reason in invalid]
            return_422 = JSONResponse({"detail": errors, "message": "; ".join(f"{e['loc']}: {e['msg']}"
                                                                               for e in errors[:5])}, status_code=422)
            raise InvalidItems(return_422)
        return grades

    def rewards_for(schemes: list[RewardScheme], grades: list[Grade], completions: list, golds: list) -> list[float]:
        """Apply each item's scheme; a plugin that raises or returns a non-finite number is a server error."""
        out = []
        for i, (s, g, c, gold) in enumerate(zip(schemes, grades, completions, golds)):
            try:
                r = s(g, c, gold)
            except Exception as e:
                raise SchemeFailed(f"reward scheme {s.name!r} raised on item {i}: {type(e).__name__}: {e}") from e
            if not math.isfinite(r):
                raise SchemeFailed(f"reward scheme {s.name!r} returned {r} for item {i}")
            out.append(r)
        return out

    def record(schemes: list[RewardScheme], grades: list[Grade]) -> None:
        m = metrics_ref.get("metrics")
        if m is not None:
            m.observe_items([s.name for s in schemes], [g.verdict for g in grades])

    @app.post("/v1/score", response_model=ScoreResponse, responses={400: {"description": "unknown scheme"},
                                                                    413: {"description": "too large"}})
    async def score(req: ScoreRequest):
        """Grade each item and return its reward, verdict, extracted answer and reason, in input order."""
        check_size(len(req.items))
        default = registry.get(req.scheme)
        schemes = [registry.get(it.scheme) if it.scheme else default for it in req.items]
        grades = await grade([GradeItem(it.completion, it.gold, s.last_number_fallback)
                              for it, s in zip(req.items, schemes)], "items.{}.gold")
        rewards = rewards_for(schemes, grades, [it.completion for it in req.items], [it.gold for it in req.items])
        results = [{"reward": r, "verdict": g.verdict, "answer": g.answer, "reason": g.reason}
                   for r, g in zip(rewards, grades)]
        record(schemes, grades)
        return JSONResponse({"results": results})

    @app.post("/get_reward", response_model=RewardResponse)
    async def get_reward(req: RewardRequest):
        """OpenRLHF remote reward protocol (``--remote_rm_url http://host:port/get_reward``)."""
        check_size(len(req.query))
        scheme = registry.get(req.scheme)
        prompts = req.prompts or [None] * len(req.query)
        responses, found = zip(*(split_response(q, p) for q, p in zip(req.query, prompts))) if req.query else ((), ())
        if not all(found):
            log.warning("/get_reward: %d of %d prompts not found in their query; graded the whole query",
                        found.count(False), len(found))
        grades = await grade([GradeItem(r, gold, scheme.last_number_fallback) for r, gold in zip(responses, req.labels)],
                             "labels.{}")
        rewards = rewards_for([scheme] * len(grades), grades, list(responses), req.labels)
        record([scheme] * len(grades), grades)
        return JSONResponse({
            "rewards": rewards,
            "scores": [openrlhf_score(g) for g in grades],
            "extra_logs": {
                "accuracy": [1.0 if g.verdict == CORRECT else 0.0 for g in grades],
                "no_answer": [1.0 if g.verdict == NO_ANSWER else 0.0 for g in grades],
                "timeout": [1.0 if g.reason == TIMEOUT_REASON else 0.0 for g in grades],
                "prompt_not_found": [0.0 if f else 1.0 for f in found],
            },
        })

    @app.get("/v1/schemes")
    async def schemes():
        """The reward schemes this service knows (append '+format' to any for the format bonus)."""
        return {"default": registry.default, "format_bonus": registry.format_bonus,
                "format_suffix": "+format", "schemes": registry.describe()}

    @app.get("/health")
    async def health():
        # ok = can grade. Workers being replaced after a timeout is normal operation, not a failure: only a pool
        # that never started or whose workers cannot start at all is reported unhealthy (503).
        p: Optional[GradingPool] = state["pool"]
        ready = p.ready_workers if p is not None else 0
        if p is None or not p.started:
            status = "starting"
        else:
            status = "broken" if p.broken else "ok"
        body = {"status": status, "workers_ready": ready, "workers": settings.workers,
                "queue_depth": p.queue_depth if p is not None else 0, "version": __version__}
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/metrics")
    async def metrics():
        m = metrics_ref.get("metrics")
        return Response(m.render() if m else b"", media_type=CONTENT_TYPE)

    return app
