"""Service settings: defaults < environment variables (``REWARD_SERVICE_*``) < command-line flags."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Mapping, Optional, Sequence

from reward_service.pool import DEFAULT_GRADER
from reward_service.rewards import DEFAULT_SCHEME

ENV_PREFIX = "REWARD_SERVICE_"


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # grading processes
    timeout: float = 2.0  # hard per-item grading limit, seconds
    max_body_bytes: int = 128 * 1024 * 1024  # one request (an OpenRLHF 0.9 rollout batch: see docs)
    max_items: int = 32768  # per request
    max_pending_body_bytes: int = 256 * 1024 * 1024  # all bodies held at once (received, parsed or graded)
    body_timeout: float = 60.0  # seconds for a whole request body to arrive
    token: Optional[str] = None  # bearer token; None = no auth
    default_scheme: str = DEFAULT_SCHEME
    format_bonus: float = 0.1  # added by the '<scheme>+format' variants
    plugins: tuple = ()  # '[name=]package.module:function' reward schemes
    entry_points: bool = True  # also load schemes from the 'mathrl.reward_schemes' entry-point group
    grader: str = DEFAULT_GRADER  # import path of the grading function run in the workers
    cache_size: int = 65536  # (completion, gold) result cache entries; 0 disables
    worker_nice: int = 10  # grading workers' CPU priority below the server's (os.nice)
    restart_backoff_max: float = 10.0  # longest wait between attempts to start a worker after failed starts
    keep_alive_timeout: float = 65.0  # seconds an idle client connection is kept open
    log_level: str = "info"
    access_log: bool = False
    fd: Optional[int] = None  # serve on an already-bound socket (used by reward_service.client.start_service)
    parent_pid: Optional[int] = None  # exit when this process (the starter) dies (set by start_service)

    HELP = {
        "host": "interface to bind (0.0.0.0 in containers)",
        "port": "TCP port",
        "workers": "grading worker processes (default: CPU count)",
        "timeout": "hard per-item time limit in seconds; the worker process is killed when exceeded",
        "max_body_bytes": "largest request body accepted (413 above)",
        "max_items": "most items per request (413 above)",
        "max_pending_body_bytes": "bytes of request bodies held at once; more requests wait for their turn (503 "
                                  "after body_timeout)",
        "body_timeout": "seconds a whole request body may take to arrive (408 after; frees its memory)",
        "token": "require 'Authorization: Bearer <token>' (prefer the env var: flags show up in ps)",
        "default_scheme": "reward scheme used when a request names none",
        "format_bonus": "bonus of the '<scheme>+format' variants for <answer> tags or \\boxed{}",
        "plugins": "extra reward scheme '[name=]package.module:function' (repeatable; env: comma-separated)",
        "entry_points": "load reward schemes from the 'mathrl.reward_schemes' entry-point group",
        "grader": "grading function 'package.module:function' run in the worker processes",
        "cache_size": "entries of the (completion, gold) result cache, 0 disables it",
        "worker_nice": "run the grading workers this much below the server's CPU priority (0: same), so the HTTP "
                       "front answers quickly on busy CPUs",
        "restart_backoff_max": "longest wait in seconds between attempts to start a grading worker after failed "
                               "starts (the pool keeps trying; 503 'unavailable' meanwhile)",
        "keep_alive_timeout": "seconds an idle HTTP connection stays open (above the clients' own idle expiry, "
                              "httpx 5 s, so a reused connection is not closed under a request)",
        "log_level": "uvicorn log level",
        "access_log": "log every request",
        "fd": "serve on this already-bound socket file descriptor instead of host:port",
        "parent_pid": "shut down when the process with this pid, the one that started the service, dies",
    }

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if self.max_items < 1 or self.max_body_bytes < 1024:
            raise ValueError("max_items must be >= 1 and max_body_bytes >= 1024")
        if self.max_pending_body_bytes < self.max_body_bytes:
            raise ValueError(f"max_pending_body_bytes ({self.max_pending_body_bytes}) must be >= max_body_bytes "
                             f"({self.max_body_bytes}): a request of the largest size must be able to run")
        if self.body_timeout <= 0 or self.keep_alive_timeout <= 0 or self.restart_backoff_max < 0:
            raise ValueError("body_timeout and keep_alive_timeout must be > 0, restart_backoff_max >= 0")
        if not 0 <= self.worker_nice <= 19:
            raise ValueError("worker_nice must be between 0 and 19")
        self.plugins = tuple(p for p in self.plugins if p)
        if self.token == "":
            self.token = None

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ
        kw = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                kw[f.name] = _convert(f.name, raw)
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)

    @classmethod
    def from_args(cls, argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> "Settings":
        return cls.from_env(environ, **vars(build_parser().parse_args(argv)))

    def public(self) -> dict:
        """Settings without secrets (for logs and /health)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["token"] = "set" if self.token else None
        return d


_INT = {"port", "workers", "max_body_bytes", "max_items", "max_pending_body_bytes", "cache_size", "fd", "worker_nice", "parent_pid"}
_FLOAT = {"timeout", "format_bonus", "body_timeout", "keep_alive_timeout", "restart_backoff_max"}
_BOOL = {"entry_points", "access_log"}


def _convert(name: str, raw: str):
    if name in _INT:
        return int(raw)
    if name in _FLOAT:
        return float(raw)
    if name in _BOOL:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: expected a boolean, got {raw!r}")
    if name == "plugins":
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reward-service",
        description="Math reward service: grades completions against gold answers over HTTP. "
        f"Every flag can also be set by an environment variable {ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}PORT).",
    )
    h = Settings.HELP
    # default=None everywhere: an unset flag falls back to the environment, then to the dataclass default.
    p.add_argument("--host", help=h["host"])
    p.add_argument("--port", type=int, help=h["port"])
    p.add_argument("--workers", type=int, help=h["workers"])
    p.add_argument("--timeout", type=float, help=h["timeout"])
    p.add_argument("--max-body-bytes", type=int, help=h["max_body_bytes"])
    p.add_argument("--max-items", type=int, help=h["max_items"])
    p.add_argument("--max-pending-body-bytes", type=int, help=h["max_pending_body_bytes"])
    p.add_argument("--body-timeout", type=float, help=h["body_timeout"])
    p.add_argument("--token", help=h["token"])
    p.add_argument("--default-scheme", help=h["default_scheme"])
    p.add_argument("--format-bonus", type=float, help=h["format_bonus"])
    p.add_argument("--plugin", dest="plugins", action="append", help=h["plugins"])
    p.add_argument("--no-entry-points", dest="entry_points", action="store_const", const=False,
                   help="do not load the 'mathrl.reward_schemes' entry points")
    p.add_argument("--grader", help=h["grader"])
    p.add_argument("--cache-size", type=int, help=h["cache_size"])
    p.add_argument("--worker-nice", type=int, help=h["worker_nice"])
    p.add_argument("--restart-backoff-max", type=float, help=h["restart_backoff_max"])
    p.add_argument("--keep-alive-timeout", type=float, help=h["keep_alive_timeout"])
    p.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], help=h["log_level"])
    p.add_argument("--access-log", action="store_const", const=True, help=h["access_log"])
    p.add_argument("--fd", type=int, help=h["fd"])
    p.add_argument("--parent-pid", type=int, help=h["parent_pid"])
    return p
