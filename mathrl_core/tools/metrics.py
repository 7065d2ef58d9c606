"""Per-step statistics of tool use, from the ``infos`` a :class:`~mathrl_core.tools.rollout.ToolRollout` attaches
to each sample (pure functions over lists; the trainer logs them every step, rl-eval in its summary)."""
from __future__ import annotations

from typing import Optional, Sequence


def tool_metrics(infos: Sequence[dict], verdicts: Optional[Sequence[str]] = None) -> dict[str, float]:
    """``tools/*`` metrics of a batch of samples.

    - ``calls_per_sample``: executed tool calls per sample; ``samples_with_calls``: fraction with at least one
    - ``error_rate``: calls that did not end ``ok`` (exceptions, limits, timeouts) / calls
    - ``timeout_rate``: calls that hit the wall or CPU limit / calls; ``sandbox_errors``: sandbox failures (count)
    - ``refused_per_sample``: requests that ran nothing (past ``max_tool_calls``, or no code block)
    - ``observation_tokens``: inserted (masked) tokens per sample
    - ``wait_s``: seconds the rollout waited on the executor (summed over engines)
    - ``accuracy_with_tool`` / ``accuracy_without_tool``: accuracy of the samples that did / did not run code
      (given ``verdicts``; a key is left out when its group is empty)
    """
    n = len(infos)
    if n == 0:
        return {}
    calls = [i.get("tool_calls", 0) for i in infos]
    total = sum(calls)
    out = {"tools/calls_per_sample": total / n,
           "tools/samples_with_calls": sum(c > 0 for c in calls) / n,
           "tools/error_rate": sum(i.get("tool_errors", 0) for i in infos) / total if total else 0.0,
           "tools/timeout_rate": sum(i.get("tool_timeouts", 0) for i in infos) / total if total else 0.0,
           "tools/sandbox_errors": float(sum(i.get("tool_sandbox_errors", 0) for i in infos)),
           "tools/refused_per_sample": sum(i.get("tool_requests_refused", 0) for i in infos) / n,
           "tools/observation_tokens": sum(i.get("observation_tokens", 0) for i in infos) / n,
           "tools/wait_s": float(sum(i.get("tool_wait_s", 0.0) for i in infos))}
    if verdicts is not None:
        if len(verdicts) != n:
            raise ValueError(f"{len(verdicts)} verdicts for {n} samples")
        for name, used in (("with", True), ("without", False)):
            group = [v for c, v in zip(calls, verdicts) if (c > 0) == used]
            if group:
                out[f"tools/accuracy_{name}_tool"] = sum(v == "correct" for v in group) / len(group)
    return out
