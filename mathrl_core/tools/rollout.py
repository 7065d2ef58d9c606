"""Multi-turn rollouts with a Python tool, over any rollout backend (HF, vLLM, or one registered later).

One ``generate`` call, for every sample in lockstep:

    turn 0: the backend samples n responses per prompt, pausing at the format's stop strings (``torl``: a model
            that writes ```` ```output ```` asks for its code block to be run)
    turn t: the code of each paused sample runs in the sandbox (all of the turn's snippets at once, in parallel);
            the output is appended as an observation; the backend continues each sample from its prompt +
            response so far (token ids, so the model's own tokens stay exactly as sampled)
    until a sample stops for another reason (eos, a stop string of the run), or its token budget is spent.

Token budget: ``sampling.max_new_tokens`` bounds the whole response -- the model's tokens *and* the observations
-- so a rollout never outgrows the engine's ``max_model_len`` and the trainer's length settings mean the same
with and without tools. ``max_tool_calls`` bounds the calls per sample; a call beyond it is answered with a note
that the code was not run (masked like any observation), and the sample continues without the tool.

What comes back is an ordinary :class:`RolloutOutput` whose rows hold the whole interleaved response: observation
tokens have ``loss_mask`` 0 and log-prob 0 (the loss, KL, entropy and the rollout/trainer mismatch metric skip
them), ``texts`` is the full text (graded like any response), and ``infos[j]`` describes the sample's calls.
Observation text is tokenized with special tokens split, so a snippet that prints ``<|im_end|>`` cannot end the
turn or forge a chat-template token.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from mathrl_core.rollout.base import RolloutBackend, RolloutOutput
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import encode_prompt
from mathrl_core.tools.config import ToolConfig
from mathrl_core.tools.formats import LIMIT_REACHED, NO_CODE, get_tool_format, observation_text
SEED_MOD = 2**31 - 1
REFUSED = ("limit", "no_code")  # tool requests that ran nothing


@dataclass
class _Sample:
    prompt_index: int
    prompt: list[int]
    seed: Optional[int]
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    finish: Optional[str] = None
    tools_on: bool = True       # False once max_tool_calls is spent: the tool's stop strings are off

    def add(self, ids, logprobs, text: str, inserted: bool) -> None:
        self.ids += list(ids)
        self.logprobs += [0.0] * len(ids) if inserted else list(logprobs)
        self.mask += [0 if inserted else 1] * len(ids)
        self.text.append(text)


class ToolRollout(RolloutBackend):
    """``inner`` with the Python tool in the loop (see the module docstring). ``executor``: anything with
    ``run_many(codes) -> [ExecResult]`` (default: ``tools.make_executor()``, closed with this backend)."""

    def __init__(self, inner: RolloutBackend, tools: ToolConfig, executor=None):
        self.inner = inner
        self.tools = tools
        self.format = get_tool_format(tools.format)
        self.stops = tuple(tools.stop) if tools.stop else self.format.stops
        self.tokenizer = inner.tokenizer
        self.shares_policy = inner.shares_policy
        self._own_executor = executor is None
        self.executor = executor if executor is not None else tools.make_executor()

    # ---- the multi-turn loop -------------------------------------------------------------------------------
    def generate(self, prompts, sampling: SamplingConfig, seeds: Sequence[int] | None = None,
                 progress: bool = False) -> RolloutOutput:
        prompt_ids = [encode_prompt(self.tokenizer, p) if isinstance(p, str) else [int(t) for t in p]
                      for p in prompts]
        n, budget = sampling.n, sampling.max_new_tokens
        base = [seeds[i] if seeds is not None else (None if sampling.seed is None else sampling.seed + i * n)
                for i in range(len(prompt_ids))]
        samples = [_Sample(i, p, None if base[i] is None else base[i] + k)
                   for i, p in enumerate(prompt_ids) for k in range(n)]
        stats = {"wait_s": 0.0}
        first = self.inner.generate(prompt_ids, self._sampling(sampling, n, budget, tools_on=True, turn=0),
                                    seeds=seeds, progress=progress)
        paused = self._absorb(samples, first, budget)
        turn = 0
        while paused:
            self._run_tools(paused, stats, budget)
            going = [s for s in paused if s.finish is None]
            paused, turn = [], turn + 1
            for tools_on in (True, False):  # samples past max_tool_calls continue without the tool's stops
                group = [s for s in going if s.tools_on == tools_on]
                if not group:
                    continue
                left = max(budget - len(s.ids) for s in group)
                spec = self._sampling(sampling, 1, left, tools_on, turn)
                row_seeds = [None if s.seed is None else _turn_seed(s.seed, turn) for s in group]
                out = self.inner.generate([s.prompt + s.ids for s in group], spec,
                                          seeds=None if None in row_seeds else row_seeds)
                paused += self._absorb(group, out, budget)
        share = stats["wait_s"] / max(len(samples), 1)
        return RolloutOutput(
            prompt_token_ids=[s.prompt for s in samples], response_token_ids=[s.ids for s in samples],
            response_logprobs=[s.logprobs for s in samples], texts=["".join(s.text) for s in samples],
            finish_reasons=[s.finish or "length" for s in samples], prompt_index=[s.prompt_index for s in samples],
            loss_mask=[s.mask for s in samples], infos=[_info(s, share) for s in samples])

    def _sampling(self, sampling: SamplingConfig, n: int, max_new: int, tools_on: bool, turn: int) -> SamplingConfig:
        stop = list(sampling.stop) + ([s for s in self.stops if s not in sampling.stop] if tools_on else [])
        seed = None if sampling.seed is None else _turn_seed(sampling.seed, turn)
        return dataclasses.replace(sampling, n=n, max_new_tokens=max(1, max_new), stop=stop, seed=seed,
                                   include_stop_str_in_output=True)

    def _absorb(self, group: list[_Sample], out: RolloutOutput, budget: int) -> list[_Sample]:
        """Append one turn's generated segment to each sample; returns those that paused for a tool call."""
        if len(out) != len(group):
            raise RuntimeError(f"the rollout backend returned {len(out)} rows for {len(group)} samples")
        paused = []
        for s, ids, lps, text, reason in zip(group, out.response_token_ids, out.response_logprobs, out.texts,
                                              out.finish_reasons):
            room = budget - len(s.ids)
            if len(ids) > room:  # a continuation shares one max_new_tokens: cut to this sample's budget
                ids, lps, reason = ids[:room], lps[:room], "length"
                text = self._decode(ids)
            calls_tool = reason == "stop" and s.tools_on and any(text.endswith(x) for x in self.stops)
            if calls_tool:
                s.add(ids, lps, self._decode(ids), inserted=False)  # the whole tokens (a stop may sit mid-token)
                s.calls.append({"code": self.format.extract_code(text)})  # this turn's text, stop string included
                paused.append(s)
            else:
                s.add(ids, lps, text, inserted=False)
                s.finish = reason
        return paused

    def _run_tools(self, paused: list[_Sample], stats: dict, budget: int) -> None:
        """Run the paused samples' code (in parallel) and append each observation."""
        todo = []
        for s in paused:
            call = s.calls[-1]
            if len(s.calls) > self.tools.max_tool_calls:  # every request counts, a block without code too
                call.update(status="limit")
                s.tools_on = False
                self._observe(s, LIMIT_REACHED, budget)
            elif call["code"] is None:
                call.update(status="no_code")
                self._observe(s, NO_CODE, budget)
            else:
                todo.append(s)
        if todo:
            t0 = time.perf_counter()
            results = self.executor.run_many([s.calls[-1]["code"] for s in todo])
            stats["wait_s"] += time.perf_counter() - t0
            for s, r in zip(todo, results):
                s.calls[-1].update(status=r.status, wall_s=r.wall_s)
                self._observe(s, observation_text(r, self.tools.max_observation_chars), budget)

    def _observe(self, s: _Sample, output: str, budget: int) -> None:
        call = s.calls[-1]
        ids = self.tokenizer(self.format.render(output), add_special_tokens=False,
                             split_special_tokens=True)["input_ids"]
        room = budget - len(s.ids)
        if len(ids) >= room:
            ids, s.finish = ids[:max(room, 0)], "length"
        s.add(ids, None, self._decode(ids), inserted=True)
        call["observation_tokens"] = len(ids)

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # ---- everything else is the inner backend's ------------------------------------------------------------
    def update_weights(self, state_dict) -> None:
        self.inner.update_weights(state_dict)

    def sync_from(self, policy) -> None:
        self.inner.sync_from(policy)

    def sleep(self) -> None:
        self.inner.sleep()

    def wake_up(self) -> None:
        self.inner.wake_up()

    def prompts_per_call(self, n: int) -> int | None:
        return self.inner.prompts_per_call(n)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if self._own_executor:
                self.executor.close()


def _turn_seed(seed: int, turn: int) -> int:
    return (seed * 1_000_003 + turn * 7919) % SEED_MOD if turn else seed


def _info(s: _Sample, wait_share: float) -> dict:
    """The sample's tool use, for the step's metrics (``mathrl_core.tools.metrics``)."""
    ran = [c for c in s.calls if c["status"] not in REFUSED]
    return {"tool_calls": len(ran),
            "tool_errors": sum(c["status"] != "ok" for c in ran),
            "tool_timeouts": sum(c["status"] in ("timeout", "cpu_limit") for c in ran),
            "tool_sandbox_errors": sum(c["status"] == "sandbox_error" for c in ran),
            "tool_requests_refused": len(s.calls) - len(ran),
            "observation_tokens": sum(c.get("observation_tokens", 0) for c in s.calls),
            "tool_statuses": [c["status"] for c in s.calls],
            "tool_wait_s": wait_share}
