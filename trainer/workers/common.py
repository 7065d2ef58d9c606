"""Small helpers shared by the workers: minibatch order, padding trim (metrics: ``trainer.worker_metrics``)."""
from __future__ import annotations

import torch

from trainer.experience import Experience


def is_deepspeed(trainable) -> bool:
    """Whether a ``Trainable`` is a DeepSpeed engine (checkpoint and weight export go through it)."""
    return getattr(trainable, "engine", None) is not None


def minibatch_permutation(n: int, seed: int, step: int, epoch: int) -> torch.Tensor:
    """The minibatch order of epoch ``epoch`` of RL step ``step``: a pure function of its arguments, so a
    resumed run shuffles exactly as an uninterrupted one."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + step * 1009 + epoch) % (2**63 - 1))
    return torch.randperm(n, generator=g)


def trimmed(exp: Experience) -> Experience:
    """Drop prompt columns that are padding in every row and response columns past the longest response."""
    from dataclasses import replace

    P = exp.prompt_len
    used = exp.attention_mask[:, :P].any(dim=0)
    first = int(used.float().argmax()) if bool(used.any()) else P - 1
    first = min(first, P - 1)  # keep at least one prompt column
    lengths = exp.attention_mask[:, P:].sum(dim=1)  # not response_mask: it has holes where tool output is masked
    T = max(1, int(lengths.max().item())) if exp.batch_size else 1
    cols = slice(first, P + T)
    out = {"input_ids": exp.input_ids[:, cols], "attention_mask": exp.attention_mask[:, cols],
           "prompt_len": P - first}
    for name, v in exp._tensor_fields():
        if name not in ("input_ids", "attention_mask") and v.dim() == 2:
            out[name] = v[:, :T]
    return replace(exp, **out)
