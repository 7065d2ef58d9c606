"""Generation for evaluation: a rollout backend of the shared core (``mathrl_core.rollout``: HF generate or
vLLM, built by the same factory and engine-argument builder as the trainer's), prompts rendered with the same
templates as training, completions regrouped per prompt.

A :class:`Generator` has ``generate(prompts, spec, seeds=None) -> [[Completion, ...], ...]`` (one list of
``spec.n`` completions per prompt, in sampling order), a ``tokenizer`` and ``close()``.
Sampled runs are reproducible per problem: each prompt gets its own seed (the harness derives it from the
run seed and the problem's benchmark and id), so with vLLM a problem's samples do not depend on batch
composition, ``--limit`` or which other benchmarks run (HF generate samples a batch from one generator
seeded with its first prompt's seed: reproducible for the same problems, chunking and seed).
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional, Sequence

from mathrl_core.completion import Completion, per_prompt_completions
from mathrl_core.rollout.base import RolloutBackend
from mathrl_core.rollout.registry import ModelSource, RolloutSpec, make_rollout
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import build_prompt


def check_sampling(spec: SamplingConfig) -> SamplingConfig:
    """Eval's rule on top of the spec's own checks: greedy decoding gives identical samples, so ``n`` must be 1."""
    if spec.greedy and spec.n > 1:
        raise ValueError(f"greedy decoding (temperature 0) gives {spec.n} identical samples; "
                         "use --temperature > 0 for n > 1, or n = 1 for greedy pass@1")
    return spec


def problem_seed(run_seed: int, benchmark: str, pid: str) -> int:
    """A stable per-problem seed: sha256 of (run seed, benchmark, id), 31 bits."""
    h = hashlib.sha256(f"{run_seed}\x00{benchmark}\x00{pid}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def build_prompts(questions: Sequence[str], tokenizer, template: Optional[str]) -> list[str]:
    """Prompts from questions with the training templates (``mathrl_core.templates.build_prompt``);
    ``template=None`` or ``"none"`` uses the questions as they are."""
    if not template or template == "none":
        return list(questions)
    return [build_prompt(tokenizer, q, template) for q in questions]


class Generator:
    """A rollout backend seen as an eval generator."""

    def __init__(self, backend: RolloutBackend, name: str):
        self.backend, self.name = backend, name
        self.tokenizer = backend.tokenizer

    def chunk_prompts(self, n: int) -> Optional[int]:
        """Prompts per ``generate`` call (None: all at once, the engine schedules them)."""
        return self.backend.prompts_per_call(n)

    def generate(self, prompts: Sequence[str], spec: SamplingConfig, seeds: Optional[Sequence[int]] = None,
                 progress: bool = False) -> list[list[Completion]]:
        check_sampling(spec)
        seeds = list(seeds) if seeds is not None else [(spec.seed or 0) + i for i in range(len(prompts))]
        out = self.backend.generate(list(prompts), spec, seeds=seeds, progress=progress)
        return per_prompt_completions(out, len(prompts), spec.n)

    def close(self) -> None:
        self.backend.close()


_SPEC_FIELDS = {f.name for f in dataclasses.fields(RolloutSpec)}


def make_generator(backend: str, model: str, tokenizer: Optional[str] = None, *, device: Optional[str] = None,
                   **settings) -> Generator:
    """A generator for the model at ``model`` (path or hub id) with the rollout backend ``backend`` (any name
    registered in ``mathrl_core.rollout.registry``); ``tokenizer`` when the model directory has none (trainer
    checkpoints). ``settings``: :class:`RolloutSpec` fields (dtype, micro_batch_size, tensor_parallel_size,
    kv_cache_memory_bytes, ...)."""
    unknown = set(settings) - _SPEC_FIELDS
    if unknown:
        raise TypeError(f"unknown generation settings {sorted(unknown)}; known: {sorted(_SPEC_FIELDS)}")
    spec = RolloutSpec(backend=backend, **settings)
    return Generator(make_rollout(spec, ModelSource(model_path=model, tokenizer_path=tokenizer, device=device)),
                     backend)


__all__ = ["Generator", "build_prompts", "check_sampling", "make_generator", "problem_seed"]
