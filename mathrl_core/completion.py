"""One generated sample, the loose forms generators and samples files give it in, and the one adapter from a
rollout backend's output to per-prompt completions (eval and the trainer's eval hook)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class Completion:
    """One generated sample."""

    text: str
    num_tokens: Optional[int] = None       # completion length in tokens, when the generator knows it
    finish_reason: Optional[str] = None    # "stop" | "length" | ...
    info: Optional[dict] = None            # a multi-turn rollout's extras (tool calls: mathrl_core.tools)


def as_completion(x: Any) -> Completion:
    """Accept a str, a dict with text/completion (+ num_tokens/finish_reason), or an object with ``.text``."""
    if isinstance(x, Completion):
        return x
    if isinstance(x, str):
        return Completion(x)
    if isinstance(x, dict):
        text = next((x[k] for k in ("text", "completion", "response", "output") if k in x), None)
        if not isinstance(text, str):
            raise ValueError(f"completion dict without a text field: {sorted(x)}")
        ntok = x.get("num_tokens", x.get("n_tokens"))
        return Completion(text, int(ntok) if ntok is not None else None, x.get("finish_reason"))
    text = getattr(x, "text", None)
    if isinstance(text, str):
        ids = getattr(x, "token_ids", None)
        ntok = getattr(x, "num_tokens", None)
        if ntok is None and ids is not None:
            ntok = len(ids)
        return Completion(text, ntok, getattr(x, "finish_reason", None))
    raise TypeError(f"cannot read a completion from {type(x).__name__}")


def per_prompt_completions(out: Any, n_prompts: int, n: int) -> list[list[Completion]]:
    """Regroup a ``RolloutOutput`` (flat, prompt-major: prompt i's samples at rows i*n .. i*n+n-1) into one list
    of :class:`Completion` per prompt (text, token count, finish reason, tool-use info)."""
    texts = list(out.texts)
    if len(texts) != n_prompts * n:
        raise ValueError(f"rollout returned {len(texts)} samples for {n_prompts} prompts x n={n}")
    infos = getattr(out, "infos", None) or [None] * len(texts)
    comps = [Completion(t, len(ids), reason, info)
             for t, ids, reason, info in zip(texts, out.response_token_ids, out.finish_reasons, infos)]
    return [comps[i * n:(i + 1) * n] for i in range(n_prompts)]
