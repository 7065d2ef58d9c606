"""What stops an asynchronous run (the trainer thread raises these at the start of a step)."""
from __future__ import annotations


class RolloutPipelineError(RuntimeError):
    """The asynchronous rollout failed: its process or engine died, it raised, or no batch arrived in time."""


class StalenessBoundExceeded(RolloutPipelineError):
    """A batch holds samples older than ``rollout.max_staleness`` allows (a bug in the pipeline, never expected)."""
