"""The executor as an HTTP endpoint of its own (FastAPI): ``code-sandbox serve``.

    POST /v1/execute  {"snippets": ["print(1)", ...]}  ->  {"results": [ExecResult, ...]}   (order preserved)
    GET  /health      200 with the isolation mode, workers and preloaded modules once the pool is up
    GET  /v1/stats    snippets run by status, restarts

Why its own service and not a route of the reward service: grading is pure and is exposed to trainers of other
projects; running model-written code is the riskiest thing this project does. Kept apart, it runs in its own
container or host with its own resource budget, its own token and its own scaling (a step's hundreds of snippets
need cores, grading needs few), and a fault in one cannot reach the other. Errors are JSON: 401 (bearer token),
413 (too many or too large snippets), 422 (malformed request). A snippet's failure is a result, never an HTTP error.
"""
from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Optional

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from sandbox.executor import DEFAULT_PRELOAD, PythonExecutor
from sandbox.limits import SandboxLimits


@dataclass
class ServerSettings:
    workers: int = 2
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    isolation: str = "auto"
    preload: tuple = DEFAULT_PRELOAD
    show_last_expression: bool = False
    token: Optional[str] = None
    max_snippets: int = 1024
    max_code_bytes: int = 64 * 1024


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    snippets: list[StrictStr] = Field(description="Python source of each snippet; each runs in a fresh process")


def create_app(settings: ServerSettings, executor: Optional[PythonExecutor] = None) -> FastAPI:
    """The app; it starts (and at shutdown closes) its own executor unless one is given."""
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        own = executor is None
        state["ex"] = executor or await asyncio.to_thread(
            PythonExecutor, settings.limits, settings.workers, settings.isolation, settings.preload,
            show_last_expression=settings.show_last_expression)
        try:
            yield
        finally:
            if own:
                await asyncio.to_thread(state["ex"].close)

    app = FastAPI(title="mathrl code sandbox", lifespan=lifespan)

    def authorized(request: Request) -> None:
        if settings.token:
            got = request.headers.get("authorization", "")
            if not secrets.compare_digest(got.encode(), f"Bearer {settings.token}".encode()):
                raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.post("/v1/execute", dependencies=[Depends(authorized)])
    async def execute(req: ExecuteRequest) -> dict:
        if len(req.snippets) > settings.max_snippets:
            raise HTTPException(413, f"{len(req.snippets)} snippets in one request; at most {settings.max_snippets}")
        big = [i for i, s in enumerate(req.snippets) if len(s.encode("utf-8")) > settings.max_code_bytes]
        if big:
            raise HTTPException(413, f"snippets {big[:10]} are longer than {settings.max_code_bytes} bytes")
        results = await asyncio.to_thread(state["ex"].run_many, req.snippets)
        return {"results": [r.to_dict() for r in results]}

    @app.get("/health")
    async def health() -> dict:
        ex = state["ex"]
        return {"status": "ok", "isolation": ex.isolation, "workers": ex.workers, "preloaded": ex.preloaded,
                "limits": ex.limits.to_dict(), "warnings": ex.warnings}

    @app.get("/v1/stats", dependencies=[Depends(authorized)])
    async def stats() -> dict:
        return state["ex"].stats()

    return app
