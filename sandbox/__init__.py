"""A sandboxed Python executor for tool-integrated reasoning: model-written snippets run in fresh, killable,
isolated processes with hard limits (standard library only; imports nothing of this project).

    executor.py   PythonExecutor: a pool of sandbox processes; run / run_many -> ExecResult
    limits.py     SandboxLimits (wall, CPU, memory, processes, file size, output), ExecResult and its statuses
    _zygote.py    the sandbox process: isolates itself, preloads modules, forks one process per snippet
    _jail.py      kernel isolation without root: user/mount/net/PID namespaces, a read-only root, no capabilities
    _guest.py     the snippet's process: rlimits, privileges dropped, the audit-hook guard, the code
    app.py        the HTTP endpoint (FastAPI): POST /v1/execute;  client.py: its client (same run_many)
    cli.py        code-sandbox serve | run | probe

The isolation model and what it leaves open: docs/sandbox.md.
"""
from sandbox.executor import DEFAULT_PRELOAD, PythonExecutor, SandboxStartError
from sandbox.limits import STATUSES, ExecResult, SandboxLimits

__all__ = ["DEFAULT_PRELOAD", "ExecResult", "PythonExecutor", "SandboxLimits", "SandboxStartError", "STATUSES"]
