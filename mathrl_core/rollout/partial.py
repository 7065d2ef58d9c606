"""Partial rollouts: generation that can take new weights mid-way (asynchronous RL).

:func:`generate_resumable` samples a batch in chunks of ``chunk_tokens`` new tokens. After every chunk it calls
``between_chunks()``, which loads weights that arrived meanwhile and returns the current policy version; the
unfinished sequences are then *interrupted* and continued under those weights: each is handed back to the
backend as a prompt (its prompt + the response so far, so the new weights recompute its keys and values) for
the next chunk. Every response token records the version that generated it, and its log-prob is the one the
generating weights gave it (the behaviour log-prob of an off-policy correction).

It works with any :class:`~mathrl_core.rollout.base.RolloutBackend` that has a ``tokenizer`` (HF and vLLM).
With ``chunk_tokens >= max_new_tokens`` it is one ``generate`` call. Conventions kept across chunks
(``mathrl_core.rollout.base``): a row ends at eos/stop token or at the first stop string -- also one that
straddles a chunk boundary (each round re-checks the whole response) -- or after ``max_new_tokens`` in all;
texts are decoded from the whole response. Each round samples with its own seed (``sampling.seed + round``):
a continued row is a fresh draw from the same distribution, not the same random stream as an uninterrupted
one.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from mathrl_core.rollout.base import RolloutBackend, RolloutOutput, find_stop
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import encode_prompt

_ROUND_SEED_STRIDE = 1_000_003


@dataclass
class _Row:
    prompt_index: int
    prompt: list[int]
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    text: str | None = None
    reason: str | None = None  # set when the row is finished

    def add(self, ids: Sequence[int], logprobs: Sequence[float], version: int) -> None:
        self.ids += list(ids)
        self.logprobs += list(logprobs)
        self.versions += [version] * len(ids)

    def cut(self, k: int) -> None:
        del self.ids[k:], self.logprobs[k:], self.versions[k:]


def generate_resumable(backend: RolloutBackend, prompts: Sequence[str] | Sequence[Sequence[int]],
                       sampling: SamplingConfig, *, chunk_tokens: int, version: int,
                       between_chunks: Callable[[], int], seeds: Sequence[int] | None = None) -> RolloutOutput:
    """``sampling.n`` responses per prompt, generated ``chunk_tokens`` at a time (module docstring).

    ``version``: the policy version of the backend's weights now. ``between_chunks()``: called after every
    chunk while sequences are unfinished; loads any new weights into ``backend`` and returns the version it then
    holds. ``seeds``: per-prompt seeds of the first chunk (as ``RolloutBackend.generate``)."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    tok = backend.tokenizer
    prompt_ids = [encode_prompt(tok, p) if isinstance(p, str) else [int(t) for t in p] for p in prompts]
    budget = sampling.max_new_tokens
    first = backend.generate(prompt_ids, replace(sampling, max_new_tokens=min(chunk_tokens, budget)), seeds=seeds)
    rows = [_Row(first.prompt_index[j], first.prompt_token_ids[j]) for j in range(len(first))]
    _absorb(rows, first, version, sampling, budget, tok, continued=False)
    round_ = 0
    while any(r.reason is None for r in rows):
        round_ += 1
        version = between_chunks()
        active = [r for r in rows if r.reason is None]
        done = len(active[0].ids)  # every unfinished row has generated the same number of tokens
        seed = None if sampling.seed is None else (sampling.seed + round_ * _ROUND_SEED_STRIDE) % (2**31 - 1)
        step = replace(sampling, n=1, seed=seed, max_new_tokens=min(chunk_tokens, budget - done))
        out = backend.generate([r.prompt + r.ids for r in active], step,
                               seeds=None if seed is None else [seed + j for j in range(len(active))])
        _absorb(active, out, version, sampling, budget, tok, continued=True)
    return RolloutOutput(
        prompt_token_ids=[r.prompt for r in rows], response_token_ids=[r.ids for r in rows],
        response_logprobs=[r.logprobs for r in rows], texts=[r.text for r in rows],
        finish_reasons=[r.reason for r in rows], prompt_index=[r.prompt_index for r in rows],
        response_versions=[r.versions for r in rows])


def _absorb(rows: list[_Row], out: RolloutOutput, version: int, sampling: SamplingConfig, budget: int, tok,
            continued: bool) -> None:
    """Append one chunk's tokens to its rows and finish the rows that ended."""
    for r, ids, lps, text, reason in zip(rows, out.response_token_ids, out.response_logprobs, out.texts,
                                         out.finish_reasons):
        r.add(ids, lps, version)
        if not continued:  # the backend saw the whole response: its text and reason stand as they are
            if reason == "stop" or len(r.ids) >= budget:
                r.text, r.reason = text, reason
            continue
        cut = find_stop(tok, r.ids, sampling.stop, sampling.include_stop_str_in_output)
        if cut is not None:  # a stop string, possibly across a chunk boundary
            r.cut(cut[0])
            r.text, r.reason = cut[1], "stop"
        elif reason == "stop":  # eos or a stop token, kept in the ids and left out of the text
            r.text, r.reason = tok.decode(r.ids[:-1], skip_special_tokens=True), "stop"
        elif len(r.ids) >= budget:
            r.text, r.reason = tok.decode(r.ids, skip_special_tokens=True), "length"
