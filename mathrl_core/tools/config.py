"""``ToolConfig``: the tool settings of a run (``rollout.tools`` in the trainer's config, ``--tools`` in rl-eval),
and the executor they build: a local pool of sandbox processes, or a remote sandbox service (``url``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from sandbox import DEFAULT_PRELOAD, PythonExecutor, SandboxLimits
from sandbox.client import SandboxClient

from mathrl_core.tools.formats import TOOL_FORMATS

TOOLS = ("python",)


@dataclass
class ToolConfig:
    tool: str = "python"                # the only tool: a sandboxed Python interpreter
    format: str = "torl"                # a name in mathrl_core.tools.formats.TOOL_FORMATS (torl | retool)
    stop: Optional[list[str]] = None    # override the format's stop strings
    max_tool_calls: int = 4             # per sample; a further call is answered "limit reached", not run
    max_observation_chars: int = 1024   # of one observation (stdout + error), head kept
    # the sandbox (see sandbox.SandboxLimits and docs/sandbox.md)
    workers: int = 4                    # snippets run at once (local pool)
    timeout_s: float = 5.0
    memory_mb: int = 1024
    max_processes: int = 4
    isolation: str = "auto"             # auto | namespaces | rlimits
    preload: list[str] = field(default_factory=lambda: list(DEFAULT_PRELOAD))
    show_last_expression: bool = False  # print a final expression's value (notebook style)
    url: Optional[str] = None           # a code-sandbox service instead of a local pool
    token: Optional[str] = field(default=None, metadata={"secret": True})  # its bearer token (default $SANDBOX_TOKEN)

    def __post_init__(self):
        if self.tool not in TOOLS:
            raise ValueError(f"tools.tool: {self.tool!r} is not one of {list(TOOLS)}")
        if self.format not in TOOL_FORMATS:
            raise ValueError(f"tools.format: {self.format!r} is not one of {list(TOOL_FORMATS)}")
        if self.max_tool_calls < 0:
            raise ValueError(f"tools.max_tool_calls must be >= 0, got {self.max_tool_calls}")
        if self.max_observation_chars < 1 or self.workers < 1:
            raise ValueError("tools.max_observation_chars and tools.workers must be >= 1")
        if self.stop is not None and (not self.stop or any(not s for s in self.stop)):
            raise ValueError("tools.stop: give non-empty stop strings (or leave it unset for the format's)")
        self.limits()  # range checks of the sandbox limits

    def limits(self) -> SandboxLimits:
        return SandboxLimits(timeout_s=self.timeout_s, memory_mb=self.memory_mb, max_processes=self.max_processes)

    def make_executor(self):
        """The executor: ``run_many(codes) -> [ExecResult]`` and ``close()``."""
        if self.url:
            return SandboxClient(self.url, token=self.token or os.environ.get("SANDBOX_TOKEN"),
                                 timeout=max(60.0, 4 * self.timeout_s))
        return PythonExecutor(self.limits(), workers=self.workers, isolation=self.isolation, preload=self.preload,
                              show_last_expression=self.show_last_expression)
