"""``reward-service``: run the math reward service (FastAPI + uvicorn).

    reward-service --port 8000 --workers 2 --timeout 2
    REWARD_SERVICE_TOKEN=secret reward-service --host 0.0.0.0
"""
from __future__ import annotations

import logging
import socket
import sys
from typing import Optional, Sequence

import uvicorn

from reward_service.app import create_app
from reward_service.lifeline import exit_with_parent
from reward_service.settings import Settings


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        settings = Settings.from_args(argv)
        app = create_app(settings)
    except (ValueError, TypeError) as e:
        print(f"reward-service: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            access_log=settings.access_log, lifespan="on", timeout_graceful_shutdown=10,
                            timeout_keep_alive=settings.keep_alive_timeout)
    server = uvicorn.Server(config)
    if settings.parent_pid is not None:  # started by a trainer (start_service): end with it, however it ends
        exit_with_parent(settings.parent_pid, lambda: setattr(server, "should_exit", True))
    sockets = None
    if settings.fd is not None:
        # An already-bound TCP socket from a parent (race-free free port). socket(fileno=) detects the family,
        # so TCP_NODELAY is set on accepted connections (uvicorn's own --fd path assumes a unix socket).
        sockets = [socket.socket(fileno=settings.fd)]
    server.run(sockets=sockets)
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
