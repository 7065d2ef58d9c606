"""A service started by another process (``reward_service.client.start_service``, which the trainer uses)
ends when that process ends, however it ends: ``kill -9`` included.

The watched process is the parent that started us. When it dies the kernel re-parents us (to init or a
subreaper), so ``os.getppid()`` stops naming it; a daemon thread polls for that (gunicorn's workers watch their
arbiter the same way) and then asks the server to shut down gracefully, which closes the grading pool. If the
process is still alive ``grace_s`` later (a shutdown that hangs), it exits hard; the pool's fork server then sees
its parent gone and exits, and the grading workers it forked die with it (``PR_SET_PDEATHSIG`` in
``reward_service.worker``).

Why not ``PR_SET_PDEATHSIG`` here too: the kernel sends it when the *thread* that forked us exits, not the
process, so a service started from a short-lived thread would be killed while its starter is alive.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


def exit_with_parent(parent_pid: int, shutdown: Callable[[], None], *, poll_s: float = 0.2,
                     grace_s: float = 20.0) -> threading.Thread:
    """Watch ``parent_pid`` (this process's parent when it started us) from a daemon thread: once it is gone,
    call ``shutdown()`` (a graceful stop), and ``os._exit(1)`` if the process is still alive ``grace_s`` later."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        log.warning("the process that started this service (pid %d) is gone: shutting down", parent_pid)
        shutdown()
        time.sleep(grace_s)
        log.error("still running %.0f s after the parent process died: exiting now", grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
