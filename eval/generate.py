"""Generation backends for evaluation: vLLM (``vllm.LLM``, tensor parallel) or HF generate through the
trainer's rollout backend. Prompts are built with the trainer's templates so eval prompts match training.

A generator has ``generate(prompts, spec, seeds=None) -> [[Completion, ...], ...]`` (one list of
``spec.n`` completions per prompt, in sampling order), a ``tokenizer`` and ``close()``.
Sampled runs are reproducible per problem: each prompt gets its own seed (the harness derives it from the
run seed and the problem's benchmark and id), so a problem's samples do not depend on batch composition,
``--limit`` or which other benchmarks run.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from eval.completion import Completion

CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30  # the trainer's engine default (trainer.rollout.vllm_engine)


@dataclass(frozen=True)
class SamplingSpec:
    """Decoding settings of an eval run. ``temperature == 0`` is greedy (then ``n`` must be 1)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 1024
    seed: int = 0
    stop: tuple = field(default_factory=tuple)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def validate(self) -> "SamplingSpec":
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.greedy and self.n > 1:
            raise ValueError(f"greedy decoding (temperature 0) gives {self.n} identical samples; "
                             "use --temperature > 0 for n > 1, or n = 1 for greedy pass@1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise ValueError(f"bad sampling settings: {self}")
        return self


def problem_seed(run_seed: int, benchmark: str, pid: str) -> int:
    """A stable per-problem seed: sha256 of (run seed, benchmark, id), 31 bits."""
    h = hashlib.sha256(f"{run_seed}\x00{benchmark}\x00{pid}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def build_prompts(questions: Sequence[str], tokenizer, template: Optional[str]) -> list[str]:
    """Prompts from questions with the trainer's template (``trainer.data.templates.build_prompt``);
    ``template=None`` or ``"none"`` uses the questions as they are."""
    if not template or template == "none":
        return list(questions)
    from trainer.data.templates import build_prompt

    return [build_prompt(tokenizer, q, template) for q in questions]


def _prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """The trainer's prompt encoding (a BOS only when the rendered prompt does not start with one)."""
    from trainer.data.templates import encode_prompt

    return encode_prompt(tokenizer, prompt)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class VLLMGenerator:
    """``vllm.LLM`` in this process. ``tensor_parallel_size`` > 1 shards the model over GPUs."""

    name = "vllm"

    def __init__(self, model: str, *, tokenizer: Optional[str] = None, tensor_parallel_size: int = 1,
                 dtype: str = "auto", seed: int = 0, max_model_len: Optional[int] = None,
                 gpu_memory_utilization: Optional[float] = None, enforce_eager: bool = False,
                 trust_remote_code: bool = False, **llm_kwargs: Any):
        if os.path.isfile(os.path.join(model, "adapter_config.json")):
            raise ValueError(f"{model} is a LoRA adapter: evaluate it with --backend hf (the adapter is merged "
                             "into its base model), or merge it and point --model at the merged model")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # CPU build: busy-waiting threads halve decoding speed
        from vllm import LLM

        kw = dict(model=model, tokenizer=tokenizer or model, tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                  seed=seed, enforce_eager=enforce_eager, trust_remote_code=trust_remote_code, **llm_kwargs)
        if _has_cuda():
            kw["gpu_memory_utilization"] = 0.85 if gpu_memory_utilization is None else gpu_memory_utilization
        else:
            # On the CPU build a memory fraction is a fraction of *host* memory, checked against vLLM's own view
            # of NUMA-node memory, which differs between machines (the engine refused to start on a fresh machine
            # with 21 GiB free): give the KV cache an explicit size instead, as the trainer's engine does.
            kw.setdefault("kv_cache_memory_bytes", CPU_DEFAULT_KV_CACHE_BYTES)
        if max_model_len:
            kw["max_model_len"] = max_model_len
        self.llm = LLM(**kw)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, seeds: Optional[Sequence[int]] = None,
                 progress: bool = False) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        spec.validate()
        seeds = list(seeds) if seeds is not None else [spec.seed + i for i in range(len(prompts))]
        params = [SamplingParams(n=spec.n, temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k,
                                 max_tokens=spec.max_tokens, seed=None if spec.greedy else s,
                                 stop=list(spec.stop) or None, include_stop_str_in_output=True)
                  for s in seeds]
        inputs = [TokensPrompt(prompt_token_ids=_prompt_token_ids(self.tokenizer, p)) for p in prompts]
        outs = self.llm.generate(inputs, params, use_tqdm=progress)
        return [[Completion(o.text, len(o.token_ids), o.finish_reason) for o in ro.outputs] for ro in outs]

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            shutdown = getattr(getattr(llm, "llm_engine", None), "shutdown", None)
            if shutdown:
                shutdown()
            del llm


class HFGenerator:
    """HF ``generate`` through the trainer's rollout backend (``trainer.rollout.hf.HFRollout``).

    Give either a loaded ``model``/``tokenizer`` (e.g. the policy being trained) or a ``model_path``.
    """

    name = "hf"

    def __init__(self, model=None, tokenizer=None, *, model_path: Optional[str] = None,
                 tokenizer_path: Optional[str] = None, dtype: str = "float32", device: Optional[str] = None,
                 micro_batch_size: int = 64, trust_remote_code: bool = False):
        if model is None:
            if not model_path:
                raise ValueError("HFGenerator needs a model or a model_path")
            from trainer.models.loading import load_tokenizer

            if tokenizer is None:
                tokenizer = load_tokenizer(tokenizer_path or model_path, padding_side="left",
                                           trust_remote_code=trust_remote_code)
            model = load_hf_model(model_path, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
        if tokenizer is None:
            raise ValueError("HFGenerator needs the tokenizer that goes with the model")
        from trainer.rollout.hf import HFRollout

        model.eval()
        self.model, self.tokenizer = model, tokenizer
        self.rollout = HFRollout(model, tokenizer, micro_batch_size=micro_batch_size)

    def chunk_prompts(self, n: int) -> int:
        """Prompts per ``generate`` call: one micro-batch of sequences (prompts x n)."""
        return max(1, self.rollout.micro_batch_size // n)

    def generate(self, prompts: Sequence[str], spec: SamplingSpec, seeds: Optional[Sequence[int]] = None,
                 progress: bool = False) -> list[list[Completion]]:
        """One rollout call; its RNG is seeded with the first prompt's seed (HF generate samples a batch
        from one generator, so per-problem seeds are not possible without giving up batching: results are
        reproducible for the same problems, chunking and seed)."""
        from trainer.rollout.base import SamplingConfig

        spec.validate()
        seeds = list(seeds) if seeds is not None else [spec.seed + i for i in range(len(prompts))]
        cfg = SamplingConfig(n=spec.n, temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k,
                             max_new_tokens=spec.max_tokens, stop=list(spec.stop), seed=seeds[0] if seeds else spec.seed)
        out = self.rollout.generate(list(prompts), cfg)
        return rollout_to_completions(out, len(prompts), spec.n)

    def close(self) -> None:
        pass


def load_hf_model(path: str, *, dtype: str = "float32", device: Optional[str] = None,
                  trust_remote_code: bool = False):
    """An HF causal LM from a model directory or hub id; a peft LoRA adapter directory is loaded onto its
    base model (``base_model_name_or_path``) and merged."""
    from trainer.models.loading import load_causal_lm

    adapter = os.path.join(path, "adapter_config.json")
    if not os.path.isfile(adapter):
        return load_causal_lm(path, dtype=dtype, trust_remote_code=trust_remote_code, device=device)
    import json

    from peft import PeftModel

    base = json.load(open(adapter, encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter} does not name its base model (base_model_name_or_path)")
    model = load_causal_lm(base, dtype=dtype, trust_remote_code=trust_remote_code, device=device)
    return PeftModel.from_pretrained(model, path).merge_and_unload()


def rollout_to_completions(out: Any, n_prompts: int, n: int) -> list[list[Completion]]:
    """Regroup a trainer ``RolloutOutput`` (flat, prompt-major: prompt i's samples at i*n .. i*n+n-1)
    into one list of completions per prompt."""
    texts = list(out.texts)
    if len(texts) != n_prompts * n:
        raise ValueError(f"rollout returned {len(texts)} samples for {n_prompts} prompts x n={n}")
    ids = getattr(out, "response_token_ids", None)
    reasons = getattr(out, "finish_reasons", None)
    comps = [Completion(t, len(ids[i]) if ids is not None else None, reasons[i] if reasons is not None else None)
             for i, t in enumerate(texts)]
    return [comps[i * n:(i + 1) * n] for i in range(n_prompts)]


def make_generator(backend: str, model: str, tokenizer: Optional[str] = None, **kw):
    """``backend`` "vllm" | "hf" -> a generator for the model at ``model`` (path or hub id); ``tokenizer``
    when the model directory has none (trainer checkpoints)."""
    if backend == "vllm":
        return VLLMGenerator(model, tokenizer=tokenizer,
                             **{k: v for k, v in kw.items() if k not in ("micro_batch_size", "device")})
    if backend == "hf":
        keep = ("dtype", "device", "micro_batch_size", "trust_remote_code")
        return HFGenerator(model_path=model, tokenizer_path=tokenizer, **{k: v for k, v in kw.items() if k in keep})
    raise ValueError(f"unknown generation backend {backend!r}; use vllm or hf")


__all__ = ["SamplingSpec", "VLLMGenerator", "HFGenerator", "build_prompts", "problem_seed", "make_generator",
           "load_hf_model", "rollout_to_completions"]
