"""Learning-rate schedules as pure functions of the optimizer-step index (LambdaLR multipliers)."""
from __future__ import annotations

import math


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear warmup, then cosine decay to ``min_lr_ratio``.

        m(s) = (s + 1) / W                                              for s < W
        m(s) = r + (1 - r) * 0.5 * (1 + cos(pi * (s - W) / (S - W)))    for W <= s < S
        m(s) = r                                                        for s >= S
    with W warmup steps, S total steps, r = min_lr_ratio.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def constant_with_warmup(step: int, warmup_steps: int) -> float:
    """LR multiplier: linear warmup ``(s + 1) / W`` then 1."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


def lr_lambda(kind: str, total_steps: int, warmup_ratio: float, min_lr_ratio: float):
    """The multiplier function for ``torch.optim.lr_scheduler.LambdaLR``."""
    warmup = int(math.ceil(warmup_ratio * total_steps))
    if kind == "cosine":
        return lambda s: cosine_with_warmup(s, total_steps, warmup, min_lr_ratio)
    if kind == "constant":
        return lambda s: constant_with_warmup(s, warmup)
    raise ValueError(f"unknown lr scheduler '{kind}' (known: cosine, constant)")
