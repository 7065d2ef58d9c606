"""The rollout interface shared by the HF ``generate`` backend and the vLLM backend.

A backend turns prompts into ``n`` sampled responses each and reports, per response, the token ids, the
log-probability of every sampled token under the distribution it was sampled from, the decoded text and why
it stopped. Responses of one prompt are contiguous: rows ``i*n .. i*n+n-1`` belong to prompt ``i``.

Conventions every backend follows (so the trainer can switch backends without changing numbers):

- Log-probs are ``log softmax(logits / temperature)[token]`` over the full vocabulary: top-k / top-p
  truncation is *not* folded in, so they equal what ``trainer.models.actor.response_logprobs`` computes with
  the same temperature (PPO's old log-probs). With ``temperature == 0`` (greedy) they use temperature 1.
- ``response_token_ids`` include the eos token when the model emitted one (the policy learns to stop); the
  text never shows special tokens.
- Stop strings: the response ends with the token that completes the first stop string; the text ends right
  after the stop string when ``include_stop_str_in_output`` (the default, so ``</answer>`` stays for the r1
  format) or right before it otherwise. A token that straddles the end of a stop string is kept whole.
- ``finish_reason`` is ``"stop"`` (eos, stop token or stop string) or ``"length"`` (``max_new_tokens`` hit).
- Multi-turn (``mathrl_core.tools``): a response may hold tokens the policy did not sample (tool output); they are
  0 in ``loss_mask`` (and log-prob 0), so the loss, the KL, the entropy and the mismatch metrics skip them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch

from mathrl_core.models.sequences import pad_sequences
from mathrl_core.sampling import SamplingConfig


@dataclass
class RolloutOutput:
    """Sampled responses; row ``j`` belongs to prompt ``prompt_index[j]``; a prompt's rows are contiguous.

    Optional fields (None when a backend does not report them; ``select``/``concat`` carry them):
    ``response_versions``: per response token, the policy version (weights) that generated it (asynchronous RL;
    a partial rollout continued under new weights has more than one version in a row);
    ``loss_mask``: per response token, 1 = sampled by the policy (trained on), 0 = inserted (a tool's output);
    ``infos``: per row, JSON-able extras of a wrapper (tool calls and their outcomes).
    """

    prompt_token_ids: list[list[int]]
    response_token_ids: list[list[int]]
    response_logprobs: list[list[float]]
    texts: list[str]
    finish_reasons: list[str]
    prompt_index: list[int]
    response_versions: Optional[list[list[int]]] = None
    # per response token: 1 = sampled by the policy (trained on), 0 = inserted (a tool's output); None = all 1
    loss_mask: Optional[list[list[int]]] = None
    # per row: JSON-able extras of a wrapper (tool calls and their outcomes); None = none
    infos: Optional[list[dict]] = None

    def __post_init__(self):
        n = len(self.response_token_ids)
        for name in ("prompt_token_ids", "response_logprobs", "texts", "finish_reasons", "prompt_index"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"RolloutOutput.{name} has {len(getattr(self, name))} rows, expected {n}")
        if self.infos is not None and len(self.infos) != n:
            raise ValueError(f"RolloutOutput.infos has {len(self.infos)} rows, expected {n}")
        for j, (ids, lps) in enumerate(zip(self.response_token_ids, self.response_logprobs)):
            if len(ids) != len(lps):
                raise ValueError(f"row {j}: {len(ids)} tokens but {len(lps)} log-probs")
        for name in _TOKEN_FIELDS:
            rows = getattr(self, name)
            if rows is None:
                continue
            if len(rows) != n:
                raise ValueError(f"RolloutOutput.{name} has {len(rows)} rows, expected {n}")
            for j, (ids, vals) in enumerate(zip(self.response_token_ids, rows)):
                if len(ids) != len(vals):
                    raise ValueError(f"row {j}: {len(ids)} tokens but {len(vals)} values in {name}")

    def __len__(self) -> int:
        return len(self.response_token_ids)

    @property
    def response_lengths(self) -> list[int]:
        return [len(r) for r in self.response_token_ids]

    def select(self, rows: Sequence[int]) -> "RolloutOutput":
        """A subset of rows (e.g. DAPO dynamic sampling keeps groups with mixed rewards)."""
        optional = {f: [getattr(self, f)[j] for j in rows] for f in _OPTIONAL if getattr(self, f) is not None}
        return RolloutOutput(*[[getattr(self, f)[j] for j in rows] for f in _FIELDS], **optional)

    @staticmethod
    def concat(outputs: Sequence["RolloutOutput"]) -> "RolloutOutput":
        """Rows of several outputs one after the other (``prompt_index`` is kept as each output gave it). An
        optional field is kept when every part has it and dropped when none has; set on some parts only, it is
        filled in for the others where it has a default (``loss_mask`` all 1, ``infos`` empty) and an error where
        it has none (``response_versions``)."""
        optional = {}
        for f in _OPTIONAL:
            present = [getattr(o, f) is not None for o in outputs]
            if not any(present):
                continue
            if not all(present) and f not in _FILL:
                raise ValueError(f"RolloutOutput.concat: some outputs have {f} and some do not")
            optional[f] = [x for o in outputs for x in (getattr(o, f) if getattr(o, f) is not None else _FILL[f](o))]
        return RolloutOutput(*[[x for o in outputs for x in getattr(o, f)] for f in _FIELDS], **optional)

    def loss_masks(self) -> list[list[int]]:
        """``loss_mask``, or all ones where the backend sampled every token."""
        if self.loss_mask is not None:
            return self.loss_mask
        return [[1] * len(r) for r in self.response_token_ids]

    def loss_mask_tensor(self, width: int) -> torch.Tensor:
        """``[B, width]`` float: 1 on the response tokens the policy sampled, 0 on inserted tokens and padding."""
        m = torch.zeros((len(self), width), dtype=torch.float32)
        for j, row in enumerate(self.loss_masks()):
            if row:
                m[j, :len(row)] = torch.as_tensor(row, dtype=torch.float32)
        return m

    def to_batch(self, pad_token_id: int, device=None):
        """The ``[left-padded prompt | right-padded response]`` tensors (``mathrl_core.models.sequences.SequenceBatch``)
        and the ``[B, T]`` float tensor of sampling log-probs, 0 at padding."""
        batch = pad_sequences(self.prompt_token_ids, self.response_token_ids, pad_token_id, device)
        T = batch.input_ids.shape[1] - batch.prompt_len
        lp = torch.zeros((len(self), T), dtype=torch.float32)
        for j, row in enumerate(self.response_logprobs):
            if row:
                lp[j, :len(row)] = torch.as_tensor(row, dtype=torch.float32)
        return batch, lp.to(device) if device is not None else lp


_FIELDS = ("prompt_token_ids", "response_token_ids", "response_logprobs", "texts", "finish_reasons",
           "prompt_index")
_TOKEN_FIELDS = ("response_versions", "loss_mask")  # optional, one value per response token
_OPTIONAL = _TOKEN_FIELDS + ("infos",)  # optional, one per row
_FILL = {"loss_mask": lambda o: [[1] * len(r) for r in o.response_token_ids],  # concat's default for a part without
         "infos": lambda o: [{} for _ in range(len(o))]}


class RolloutBackend(ABC):
    """Everything the RL loop and the eval harness call on an inference engine (no ``hasattr`` anywhere).

    ``shares_policy``: the backend generates with the policy module itself (HF generate on the trainer's
    model), so there is nothing to sync and the rollout's weights are always the policy's.
    """

    shares_policy: bool = False

    @abstractmethod
    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingConfig,
                 seeds: Sequence[int] | None = None, progress: bool = False) -> RolloutOutput:
        """Sample ``sampling.n`` responses for each prompt (a rendered prompt string or its token ids).

        ``seeds``: one seed per prompt, so a prompt's samples do not depend on the batch it is in (eval);
        a backend that samples a batch from one generator uses ``seeds[0]``. Default: ``sampling.seed``.
        ``progress``: a progress bar where the backend has one."""

    @abstractmethod
    def update_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Replace (some of) the engine's weights by HF-named tensors, e.g. ``export_state_dict(actor)``."""

    def sync_from(self, policy) -> None:
        """Bring the engine's weights to the policy worker's (``policy.named_weights()``); a no-op when the
        backend shares the policy module. Distributed engines choose their own route (NCCL, object store)."""
        if not self.shares_policy:
            self.update_weights(policy.named_weights())

    def sleep(self) -> None:
        """Release accelerator memory while the trainer works (vLLM sleep mode); a no-op by default."""

    def wake_up(self) -> None:
        """Undo :meth:`sleep` before the next weight sync and generation; a no-op by default."""

    def prompts_per_call(self, n: int) -> int | None:
        """How many prompts a caller should hand over at once for ``n`` samples each (None: all of them;
        the engine schedules the batch itself)."""
        return None

    def close(self) -> None:
        """Release engine resources (no-op by default)."""


def find_stop(tokenizer, token_ids: Sequence[int], stops: Sequence[str], include_stop: bool = True):
    """Cut a response at the first stop string.

    Returns ``None`` when no stop string occurs in the decoded text, otherwise ``(k, text)``: ``k`` the
    number of tokens to keep (the shortest prefix whose text contains a stop string; found by bisection, so
    ~log2(len) decodes) and the text cut right after (or before, ``include_stop=False``) that stop string.
    """
    if not stops or not token_ids:
        return None

    def decode(ids):
        return tokenizer.decode(list(ids), skip_special_tokens=True)

    if not any(s in decode(token_ids) for s in stops):
        return None
    lo, hi = 1, len(token_ids)  # invariant: prefix of length hi contains a stop string
    while lo < hi:
        mid = (lo + hi) // 2
        if any(s in decode(token_ids[:mid]) for s in stops):
            hi = mid
        else:
            lo = mid + 1
    text = decode(token_ids[:hi])
    pos, stop = min(((text.find(s), s) for s in stops if s in text), key=lambda x: (x[0], -len(x[1])))
    return hi, text[:pos + len(stop)] if include_stop else text[:pos]
