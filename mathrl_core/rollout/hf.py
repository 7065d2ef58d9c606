"""Rollout with Hugging Face ``generate``: batched, left-padded, n samples per prompt, stop strings.

Sampling is done by our own logits processor so that the distribution sampled from and the log-probs
reported are under our control whatever the checkpoint's ``generation_config.json`` says (Qwen ships
``top_k=20``, ``repetition_penalty=1.05``, ...): during ``generate`` the model's generation config is replaced
by a neutral one, HF's own warpers are disabled, and :class:`SamplingProcessor` applies temperature, top-k and
top-p and records ``log softmax(logits / T)`` of each sampled token (see ``mathrl_core.rollout.base`` for the
conventions shared with the vLLM backend).
"""
from __future__ import annotations

import contextlib
from typing import Mapping, Sequence

import torch
from torch import nn

from mathrl_core.templates import encode_prompt
from mathrl_core.models.loading import load_weights, unwrap_model
from mathrl_core.rollout.base import RolloutBackend, RolloutOutput, find_stop
from mathrl_core.sampling import SamplingConfig, logprob_temperature


def top_k_top_p_mask(z: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to -inf (keeps at least one token).

    The nucleus is the smallest set of most likely tokens whose probability mass reaches ``top_p``.
    """
    if top_k and 0 < top_k < z.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    if top_p < 1.0:
        sorted_z, order = torch.sort(z, dim=-1, descending=True)
        probs = torch.softmax(sorted_z, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs  # mass of the strictly more likely tokens
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        z = z.masked_fill(drop, float("-inf"))
    return z


class SamplingProcessor:
    """A ``LogitsProcessor``: returns temperature-scaled, top-k/top-p-masked logits for HF to sample from,
    and records the log-prob of each sampled token under ``softmax(logits / T)`` (full vocabulary).

    With ``draw=True`` it samples the token itself (:func:`mathrl_core.rollout.hf_decode.draw_from_logits`) and
    returns logits whose only finite entry is that token, for ``generate`` run greedy.

    The token sampled at step s is only known at step s+1 (it is then the last column of ``input_ids``), so
    the step's log-softmax is kept until then; :meth:`finish` handles the last step.
    """

    def __init__(self, temperature: float, top_k: int, top_p: float, draw: bool = False):
        self.temperature = logprob_temperature(temperature)
        self.top_k = top_k if top_k > 0 else 0
        self.top_p = top_p
        self.draw = None
        if draw:
            from mathrl_core.rollout.hf_decode import draw_from_logits

            self.draw = draw_from_logits
        self.logprobs: list[torch.Tensor] = []
        self._prev: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._prev is not None:
            self.logprobs.append(self._prev.gather(1, input_ids[:, -1:]).squeeze(1))
        z = scores.float()
        if self.temperature != 1.0:
            z = z / self.temperature
        self._prev = torch.log_softmax(z, dim=-1)
        z = top_k_top_p_mask(z, self.top_k, self.top_p)
        if self.draw is None:
            return z
        return torch.full_like(z, float("-inf")).scatter_(1, self.draw(z), 0.0)

    def finish(self, generated: torch.Tensor) -> torch.Tensor:
        """``[b, steps]`` log-probs of ``generated`` (the new columns returned by ``generate``)."""
        if self._prev is not None and len(self.logprobs) < generated.shape[1]:
            self.logprobs.append(self._prev.gather(1, generated[:, -1:]).squeeze(1))
            self._prev = None
        if not self.logprobs:
            return generated.new_zeros(generated.shape, dtype=torch.float32)
        return torch.stack(self.logprobs, dim=1)


class StopOnStrings:
    """A ``StoppingCriteria``: a row is done once its last few generated tokens decode to a stop string."""

    def __init__(self, tokenizer, stops: Sequence[str], prompt_len: int):
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.prompt_len = prompt_len
        # every token is at least one byte, so a stop string ending in the last token lies in this window
        self.window = max(len(s.encode("utf-8")) for s in stops) + 1

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        tail = input_ids[:, max(self.prompt_len, input_ids.shape[1] - self.window):]
        texts = self.tokenizer.batch_decode(tail.tolist(), skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], dtype=torch.bool,
                            device=input_ids.device)


@contextlib.contextmanager
def _neutral_generation(model: nn.Module):
    """Eval mode (no dropout) and a blank ``generation_config`` so no checkpoint default leaks into sampling."""
    from transformers import GenerationConfig

    base = unwrap_model(model)
    saved_cfg, was_training = base.generation_config, model.training
    base.generation_config = GenerationConfig()
    model.eval()
    try:
        yield
    finally:
        base.generation_config = saved_cfg
        model.train(was_training)


class HFRollout(RolloutBackend):
    """HF ``generate`` rollout.

    ``model`` may be the actor itself (``shares_policy=True``: weights are always current, nothing to sync)
    or a separate plain HF model that receives ``export_state_dict(actor)``.
    ``micro_batch_size`` is the number of sequences (prompts × n) generated together.
    ``fast_decode``: HF ``generate`` with the pieces of :mod:`mathrl_core.rollout.hf_decode` plugged in (a
    preallocated KV cache, grouped-query decode attention, each distinct prompt prefilled once, sampling in
    the logits processor); False = stock ``generate``.
    """

    def __init__(self, model: nn.Module, tokenizer, micro_batch_size: int = 64, fast_decode: bool = True,
                 shares_policy: bool = False):
        if micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs a pad token (load it with mathrl_core.models.loading.load_tokenizer)")
        self.model = model
        self.tokenizer = tokenizer
        self.micro_batch_size = micro_batch_size
        self.fast_decode = fast_decode
        self.shares_policy = shares_policy

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def eos_token_ids(self, extra: Sequence[int] = ()) -> list[int]:
        """The model's generation-config eos ids ∪ the tokenizer's eos id ∪ ``extra``."""
        ids = []
        cfg_eos = getattr(unwrap_model(self.model).generation_config, "eos_token_id", None)
        cfg_eos = list(cfg_eos) if isinstance(cfg_eos, (list, tuple)) else [cfg_eos]
        for x in cfg_eos + [self.tokenizer.eos_token_id] + list(extra):
            if x is not None and int(x) not in ids:
                ids.append(int(x))
        if not ids:
            raise ValueError("no eos token id: set tokenizer.eos_token or sampling.stop_token_ids")
        return ids

    def prompts_per_call(self, n: int) -> int:
        """One micro-batch of sequences (prompts x n)."""
        return max(1, self.micro_batch_size // n)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingConfig,
                 seeds: Sequence[int] | None = None, progress: bool = False) -> RolloutOutput:
        """HF generate samples the whole batch from one generator: ``seeds[0]`` seeds it (same results for the
        same prompts, chunking and seeds)."""
        seed = seeds[0] if seeds else sampling.seed
        prompt_ids = [encode_prompt(self.tokenizer, p) if isinstance(p, str) else [int(t) for t in p]
                      for p in prompts]
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("empty prompt")
        rows = [(i, ids) for i, ids in enumerate(prompt_ids) for _ in range(sampling.n)]
        eos = self.eos_token_ids(sampling.stop_token_ids)
        out = {k: [] for k in ("prompt_token_ids", "response_token_ids", "response_logprobs", "texts",
                               "finish_reasons", "prompt_index")}
        rng = torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [],
                                    enabled=seed is not None)
        with rng, _neutral_generation(self.model):
            if seed is not None:
                torch.manual_seed(seed)
            for start in range(0, len(rows), self.micro_batch_size):
                chunk = rows[start:start + self.micro_batch_size]
                ids, lps = self._generate_chunk([r[1] for r in chunk], sampling, eos)
                for (pi, p), r_ids, r_lps in zip(chunk, ids, lps):
                    r_ids, r_lps, text, reason = self._finish_row(r_ids, r_lps, sampling, set(eos))
                    out["prompt_token_ids"].append(list(p))
                    out["response_token_ids"].append(r_ids)
                    out["response_logprobs"].append(r_lps)
                    out["texts"].append(text)
                    out["finish_reasons"].append(reason)
                    out["prompt_index"].append(pi)
        return RolloutOutput(**out)

    def _generate_chunk(self, prompt_ids: list[list[int]], sampling: SamplingConfig, eos: list[int]):
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        pad = self.tokenizer.pad_token_id
        P = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), P), pad, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for j, p in enumerate(prompt_ids):  # left padding
            input_ids[j, P - len(p):] = torch.as_tensor(p)
            attention_mask[j, P - len(p):] = 1
        draw = self.fast_decode and not sampling.greedy
        processor = SamplingProcessor(sampling.temperature, sampling.top_k, sampling.top_p, draw=draw)
        hf_samples = not (sampling.greedy or draw)
        # HF's warpers off (ours do it); set only when HF samples, as greedy generate warns about them
        warpers = dict(temperature=1.0, top_k=0, top_p=1.0) if hf_samples else {}
        gen_cfg = GenerationConfig(
            max_new_tokens=sampling.max_new_tokens, do_sample=hf_samples, num_beams=1, repetition_penalty=1.0,
            eos_token_id=eos, pad_token_id=pad, use_cache=True, return_dict_in_generate=False, **warpers)
        stopping = StoppingCriteriaList([StopOnStrings(self.tokenizer, sampling.stop, P)] if sampling.stop else [])
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, generation_config=gen_cfg,
                      logits_processor=LogitsProcessorList([processor]), stopping_criteria=stopping)
        if not self.fast_decode:
            seqs = self.model.generate(**kwargs)
        else:
            from mathrl_core.rollout import hf_decode

            with hf_decode.decode_attention(self.model):
                cache = (hf_decode.preallocated_cache(self.model, P + sampling.max_new_tokens)
                         if hf_decode.all_full_attention(self.model) else None)
                if cache is not None:
                    hf_decode.prefill_shared_prompts(self.model, input_ids, attention_mask, cache)
                    kwargs["past_key_values"] = cache
                seqs = self.model.generate(**kwargs)
        generated = seqs[:, P:]
        logprobs = processor.finish(generated)
        return generated.tolist(), logprobs.float().cpu().tolist()

    def _finish_row(self, ids: list[int], lps: list[float], sampling: SamplingConfig, eos: set[int]):
        """Cut a generated row at its first eos token or stop string; decode; name the finish reason."""
        first_eos = next((j for j, t in enumerate(ids) if t in eos), None)
        body = ids if first_eos is None else ids[:first_eos]
        cut = find_stop(self.tokenizer, body, sampling.stop, sampling.include_stop_str_in_output)
        if cut is not None:
            k, text = cut
            return ids[:k], lps[:k], text, "stop"
        if first_eos is not None:
            keep = first_eos + 1  # the eos token stays in the response (the policy learns to stop)
            return ids[:keep], lps[:keep], self.tokenizer.decode(body, skip_special_tokens=True), "stop"
        return ids, lps, self.tokenizer.decode(ids, skip_special_tokens=True), "length"

    def update_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Copy HF-named tensors into the rollout model (all or some of its weights)."""
        load_weights(self.model, state_dict)
