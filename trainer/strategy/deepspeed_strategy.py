"""DeepSpeed ZeRO data-parallel training behind the same ``Trainable`` API as the plain-torch strategy.

Every rank of a data-parallel group builds one ``DeepSpeedTrainable`` over its copy of the model and feeds it its
share of each minibatch::

    trainable = DeepSpeedTrainable(model, lr=..., weight_decay=..., betas=..., max_grad_norm=...,
                                   lr_lambda=..., zero_stage=2, dtype="bfloat16")
    for mb in my_micro_batches:                       # the same number of micro-batches on every rank
        out = trainable.module(input_ids=..., attention_mask=...)   # the forward goes through the engine
        loss = loss_fn(out, normalizer=global_count / world_size)
        grad_norm = trainable.micro_step(loss, boundary=mb.is_last)

``trainable.module`` is the DeepSpeed engine (an ``nn.Module`` that forwards attribute look-ups to the model);
the forward must run through it because DeepSpeed's backward relies on hooks its ``forward`` installs (a bare
forward with gradients is refused in ``micro_step``). ``trainable.model`` is the HF model itself.

Gradient semantics (identical to ``TorchTrainable`` on the union of the ranks' data):
  * ``micro_step`` back-propagates the loss *as given* (``engine.backward(loss, scale_wrt_gas=False)``): the
    losses are already normalised for the whole minibatch, so there is no division by the number of
    micro-batches. DeepSpeed's own bookkeeping would divide by ``gradient_accumulation_steps``.
  * The accumulation boundary is set explicitly before every backward
    (``engine.set_gradient_accumulation_boundary``), so the caller decides where a minibatch ends, and
    minibatches may hold different numbers of micro-batches.
  * DeepSpeed *averages* gradients over ranks, so a loss normalised by ``global_count / world_size`` gives
    ``∇ Σ_all token losses / global_count``: the single-process gradient.
  * At a boundary the global gradient norm (before clipping) is returned, the gradients are clipped to
    ``max_grad_norm`` (``gradient_clipping`` in the DeepSpeed config), AdamW steps and the LambdaLR schedule
    advances -- the order ``TorchTrainable`` uses.

Skipped micro-batches (the ratio early stop): pass ``loss * 0`` from the micro-batch's forward. That keeps every
rank's backward -- and so the ZeRO-2/3 gradient reductions, which are collectives run inside the backward -- in
lock-step. A loss without a graph (``torch.zeros(())``) is also accepted and turned into a zero-valued graph over
the trainable parameters (see ``_zero_graph_if_needed``; under ZeRO-2/3 with several ranks only if every rank
skips that micro-batch, otherwise a clear error on every rank).

The optimizer is always a torch ``AdamW`` object (``trainer.strategy.build_optimizer``) handed to
``deepspeed.initialize``; DeepSpeed wraps it (fp32 master weights, partitions). The offload flags move
optimizer state / parameters to CPU memory: on GPU clusters DeepSpeed expects its compiled ``DeepSpeedCPUAdam``
there for speed; this module passes the torch optimizer (``zero_force_ds_cpu_optimizer: false``), which is what
runs on a CPU-only machine, where compiling DeepSpeed's ops takes minutes.

All methods that touch parameters or states (``micro_step``, ``save_state``, ``load_state``,
``save_pretrained``, ``named_full_weights``) are collectives: call them on every rank.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import nn

from trainer.strategy import dist
from trainer.strategy.torch_strategy import build_optimizer

DTYPES = ("float32", "bfloat16", "float16")
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
CHECKPOINT_TAG = "state"


# ---------------------------------------------------------------------------------------------- config
def ds_config(
    zero_stage: int = 2,
    dtype: str = "bfloat16",
    max_grad_norm: float = 1.0,
    offload_optimizer: bool = False,
    offload_params: bool = False,
    micro_batch_size: int = 1,
    grad_accum_steps: int = 1,
    world_size: Optional[int] = None,
) -> Dict[str, Any]:
    """The DeepSpeed config dict for one data-parallel training group.

    ``micro_batch_size`` (samples per micro-batch per rank) and ``grad_accum_steps`` (micro-batches per optimizer
    step per rank) only feed DeepSpeed's sample counters -- ``micro_step`` sets the boundaries itself -- except
    with ``offload_optimizer`` under ZeRO-1/2, where DeepSpeed picks its CPU accumulation buffers from
    ``grad_accum_steps`` and it must equal the real count (checked in ``micro_step``).
    bf16 keeps fp32 master weights and accumulates gradients in fp32 (``data_types.grad_accum_dtype``). fp16 uses
    DeepSpeed's dynamic loss scale, which skips the update (and the schedule step) on overflow
    (``engine.skipped_steps`` counts them) -- a difference from ``TorchTrainable``.
    """
    dtype = _DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0-3, got {zero_stage}")
    if offload_params and zero_stage != 3:
        raise ValueError("offload_params needs ZeRO stage 3 (only ZeRO-3 partitions the parameters)")
    if dtype == "bfloat16" and zero_stage == 0:
        # DeepSpeed's stage-0 bf16 path runs the optimizer on bf16 weights with bf16 gradient accumulation
        raise ValueError("bf16 needs ZeRO stage >= 1 (fp32 master weights and fp32 gradient accumulation)")
    if offload_optimizer and zero_stage == 0:
        raise ValueError("offload_optimizer needs ZeRO stage 1-3")
    if micro_batch_size < 1 or grad_accum_steps < 1:
        raise ValueError("micro_batch_size and grad_accum_steps must be >= 1")
    if world_size is None:  # the running group's size, else what the launcher announced
        world_size = dist.world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))
    zero: Dict[str, Any] = {"stage": zero_stage}
    if zero_stage > 0:
        zero.update({"overlap_comm": False, "contiguous_gradients": True})
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if zero_stage == 3:
        # the gathered HF save is done here (``save_pretrained``), not by DeepSpeed's 16-bit consolidation
        zero["stage3_gather_16bit_weights_on_model_save"] = False
    cfg: Dict[str, Any] = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum_steps,
        "train_batch_size": micro_batch_size * grad_accum_steps * world_size,
        "gradient_clipping": float(max_grad_norm) if max_grad_norm and max_grad_norm > 0 else 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": dtype == "bfloat16"},
        "fp16": {"enabled": dtype == "float16", "initial_scale_power": 16, "loss_scale_window": 1000,
                 "hysteresis": 2, "min_loss_scale": 1},
        # a client torch AdamW: allowed under ZeRO and with CPU offload (DeepSpeedCPUAdam needs compiled ops)
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }
    if dtype == "bfloat16":
        cfg["data_types"] = {"grad_accum_dtype": "fp32"}
    return cfg


def start_deepspeed():
    """Join the process group from the environment (``dist.init_from_env``), make DeepSpeed's comm layer adopt
    it, and return the ``deepspeed`` module.

    On the CPU accelerator DeepSpeed's comm backend would JIT-compile its shared-memory all-reduce kernel
    ``deepspeed_shm_comm`` first (about 3 minutes on 2 cores, redone on every fresh machine). That kernel only
    serves ``inference_all_reduce`` (tensor-parallel inference); ZeRO training uses the gloo collectives, so it
    is marked incompatible here and never built.
    """
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() == "cpu":
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    dist.init_from_env()
    deepspeed.init_distributed(dist_backend=dist.default_backend(), auto_mpi_discovery=False, verbose=False)
    return deepspeed


# ---------------------------------------------------------------------------------------------- models
def load_model(loader: Callable[[], nn.Module], config: Dict[str, Any]) -> nn.Module:
    """Build a model with ``loader()`` (e.g. ``lambda: load_causal_lm(path)`` or
    ``lambda: AutoModelForCausalLM.from_config(cfg)``) so that it is right for ``config``.

    Under ZeRO-3 the model must be created *partitioned* (``deepspeed.zero.Init``) and the checkpoint loaded
    into the partitions: Hugging Face does both when an ``HfDeepSpeedConfig`` is alive during
    ``from_pretrained``/``from_config``. Transformers only keeps a weak reference to it, so the object is
    stored on the model (``model._hf_deepspeed_config``) and lives as long as the model. While it lives, other
    HF models created in this process are partitioned too (what a ZeRO-3 reference model wants). Import the model
    classes before calling this (transformers' lazy imports inside ``zero.Init`` misbehave).
    Other stages: just ``loader()``.
    """
    if config.get("zero_optimization", {}).get("stage", 0) != 3:
        return loader()
    from transformers.integrations import HfDeepSpeedConfig

    start_deepspeed()
    hf_ds_config = HfDeepSpeedConfig(config)
    model = loader()
    if not any(hasattr(p, "ds_id") for p in model.parameters()):
        raise RuntimeError("ZeRO-3: the loader built an unpartitioned model; create it with HF "
                           "from_pretrained/from_config inside load_model (not before)")
    model._hf_deepspeed_config = hf_ds_config
    return model


def _is_partitioned(t: torch.Tensor) -> bool:
    return hasattr(t, "ds_id")


def named_full_weights(model: nn.Module, include_buffers: bool = False) -> Iterator[Tuple[str, torch.Tensor]]:
    """Yield ``(hf_name, full_tensor)`` for every entry of ``model.state_dict()``, one parameter at a time.

    Names are the HF state-dict names, so a tied ``lm_head.weight`` is yielded too (``named_parameters()`` and
    ``save_pretrained`` omit it, but vLLM needs it or its logits stay old). Under ZeRO-3 each parameter is
    gathered from its partitions just for its turn (``deepspeed.zero.GatheredParameters``), so peak extra memory
    is one parameter. The yielded tensor is only valid until the next item: clone it to keep it.
    Collective under ZeRO-3: every rank must run the generator to the end (rank 0 typically sends, the others
    discard). Buffers (non-parameters) are included with ``include_buffers``.
    """
    import deepspeed

    entries = model.state_dict(keep_vars=True)
    params = {id(p): p for p in model.parameters()}
    aliases: Dict[int, list] = {}
    for name, t in entries.items():
        if id(t) not in params and not include_buffers:
            continue
        aliases.setdefault(id(t), []).append((name, t))
    for group in aliases.values():
        t = group[0][1]
        ctx = deepspeed.zero.GatheredParameters([t], modifier_rank=None) if _is_partitioned(t) \
            else contextlib.nullcontext()
        with ctx:
            for name, _ in group:
                yield name, t.data


def save_pretrained(model: nn.Module, directory: str | Path, tokenizer=None) -> None:
    """Write ``model`` as an HF directory (config + safetensors [+ tokenizer]) loadable by
    ``AutoModelForCausalLM.from_pretrained``. Works under every ZeRO stage: ZeRO-3 parameters are gathered one
    at a time into a CPU state dict on rank 0, which alone writes. Collective: call on every rank."""
    directory = Path(directory)
    main = dist.rank() == 0
    state: Dict[str, torch.Tensor] = {}
    for name, tensor in named_full_weights(model, include_buffers=True):
        if main:
            state[name] = tensor.detach().to("cpu", copy=True)
    if main:
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(directory, state_dict=state)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
    dist.barrier()


# ---------------------------------------------------------------------------------------------- trainable
class DeepSpeedTrainable:
    """One DeepSpeed engine (ZeRO stage 0-3) + torch AdamW + LambdaLR on this rank.

    ``module``: the DeepSpeed engine, to run the forward pass through; ``model``: the HF model (HF parameter
    names, ``config``); ``engine``: the engine. The process group comes from the environment
    (``dist.init_from_env``); one rank without a launcher is fine. Under ZeRO-3 build the model with
    ``load_model`` first. ``config`` replaces the generated DeepSpeed config (``ds_config``) when given.

    ``offload_optimizer`` / ``offload_params``: keep optimizer states / parameters in CPU memory (ZeRO-Offload;
    parameters need ZeRO-3). Here the torch AdamW runs on those CPU states; on GPU clusters DeepSpeed's
    ``DeepSpeedCPUAdam`` is the fast choice (it needs DeepSpeed's compiled CPU-Adam op, ~2 min to build).
    """

    def __init__(self, module: nn.Module, lr: float, weight_decay: float, betas, max_grad_norm: float,
                 lr_lambda: Callable[[int], float], zero_stage: int = 2, dtype: str = "bfloat16",
                 offload_optimizer: bool = False, offload_params: bool = False, micro_batch_size: int = 1,
                 grad_accum_steps: int = 1, config: Optional[Dict[str, Any]] = None):
        deepspeed = start_deepspeed()
        self.config = config if config is not None else ds_config(
            zero_stage=zero_stage, dtype=dtype, max_grad_norm=max_grad_norm, offload_optimizer=offload_optimizer,
            offload_params=offload_params, micro_batch_size=micro_batch_size, grad_accum_steps=grad_accum_steps)
        self.zero_stage = self.config["zero_optimization"]["stage"]
        self.max_grad_norm = max_grad_norm
        optimizer = build_optimizer(module, lr, weight_decay, betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=module, optimizer=optimizer, lr_scheduler=scheduler, config=self.config)
        self.module = self.engine          # forward through this (DeepSpeed's hooks run in engine.forward)
        self.model = self.engine.module    # the HF model itself
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # A gradient-enabled forward on the bare model skips the engine's hooks: notice it, refuse in micro_step.
        self._in_engine_forward = self._bypassed_engine = False
        self.engine.register_forward_pre_hook(lambda *_: setattr(self, "_in_engine_forward", True))
        self.engine.register_forward_hook(lambda *_: setattr(self, "_in_engine_forward", False))
        self.model.register_forward_pre_hook(self._note_bare_forward)
        self._micro_in_step = 0  # micro-batches seen since the last boundary
        self._offload_gas_check = (self.config["zero_optimization"].get("offload_optimizer") is not None
                                   and self.zero_stage in (1, 2))

    def _note_bare_forward(self, *_):
        if torch.is_grad_enabled() and not self._in_engine_forward:
            self._bypassed_engine = True

    # -- training ---------------------------------------------------------------------------------------
    def micro_step(self, loss: torch.Tensor, boundary: bool) -> Optional[float]:
        """Back-propagate ``loss`` (already normalised for the whole minibatch); at a boundary reduce, clip,
        step AdamW and the schedule, zero the gradients and return the global grad norm (before clipping)."""
        if loss.numel() != 1:
            raise ValueError(f"micro_step needs a scalar loss, got shape {tuple(loss.shape)}")
        self._micro_in_step += 1
        if boundary and self._offload_gas_check and self._micro_in_step != self.engine.gradient_accumulation_steps():
            raise ValueError(
                f"optimizer offload under ZeRO-{self.zero_stage} needs grad_accum_steps equal to the micro-batches "
                f"per step: got {self._micro_in_step}, configured {self.engine.gradient_accumulation_steps()}")
        self._check_forward_path()
        self._check_graph_agreement(loss)
        with self._zero_graph_if_needed(loss) as loss:
            self.engine.set_gradient_accumulation_boundary(bool(boundary))
            self.engine.backward(loss, scale_wrt_gas=False)
            pre_norm = self._grad_norm_stage0() if boundary and self._needs_own_norm() else None
            self.engine.step()
        if not boundary:
            return None
        self._micro_in_step = 0
        norm = self.engine.get_global_grad_norm() if pre_norm is None else pre_norm
        if norm is None:
            raise RuntimeError("DeepSpeed returned no gradient norm at the boundary")
        return float(norm.item() if torch.is_tensor(norm) else norm)

    def _check_forward_path(self) -> None:
        if self._bypassed_engine:
            self._bypassed_engine = False
            raise RuntimeError("the forward pass with gradients ran on the bare model, not through the DeepSpeed "
                               "engine: call trainable.module(...) (the engine), whose forward hooks DeepSpeed's "
                               "backward relies on (its bf16 optimizer would silently double-count gradients)")

    def _needs_own_norm(self) -> bool:
        # ZeRO and DeepSpeed's bf16/fp16 wrappers record the norm; the plain fp32 engine (stage 0) does not.
        return self.zero_stage == 0 and not (self.engine.bfloat16_enabled() or self.engine.fp16_enabled())

    def _grad_norm_stage0(self) -> float:
        grads = [p.grad for p in self.params if p.grad is not None]
        return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0

    def _check_graph_agreement(self, loss: torch.Tensor) -> None:
        """Under ZeRO-2/3 with several ranks, refuse a micro-batch where some ranks pass a graph-less loss and
        others a real one (one small all-reduce per micro-batch).

        ZeRO-2/3 reduce gradients inside the backward, bucket by bucket in the order the gradient hooks fire; a
        synthesised zero graph fires them in another order than a real backward, and the ranks would then
        reduce mismatched buckets -- measured: no hang, silently wrong gradients. ZeRO-0/1 reduce only at the
        boundary, in parameter order, so they need no check.
        """
        world = dist.world_size()
        if world == 1 or self.zero_stage < 2:
            return
        graphless = dist.all_reduce_sum(float(loss.grad_fn is None))
        if 0 < graphless < world:
            raise ValueError(
                f"micro-batch {self._micro_in_step}: {int(graphless)} of {world} ranks passed a loss without a "
                f"graph while the others ran a real backward; under ZeRO-{self.zero_stage} the ranks' backward "
                "passes must match. Skip a micro-batch with `loss * 0` from its forward instead")

    @contextlib.contextmanager
    def _zero_graph_if_needed(self, loss: torch.Tensor):
        """Yield ``loss`` if it has a graph; else (it must be 0) a zero-valued loss over every trainable
        parameter, so that DeepSpeed's backward hooks, gradient reductions and boundary work still run.

        Under ZeRO-3 the parameters are gathered for that backward (the whole model at once: a rare path).
        Under ZeRO-2/3 with several ranks either every rank passes such a loss for this micro-batch or none does
        (``_check_graph_agreement``); ``loss * 0`` from the forward has no such restriction.
        """
        if loss.grad_fn is not None:
            yield loss
            return
        if float(loss.detach()) != 0.0:
            raise ValueError("micro_step got a loss without a graph that is not 0; a skipped micro-batch must "
                             "pass 0 (or loss * 0), anything else would be silently dropped")
        import deepspeed
        from deepspeed.runtime.utils import register_output_backward_hooks

        gather = deepspeed.zero.GatheredParameters(self.params, modifier_rank=None) \
            if self.zero_stage == 3 else contextlib.nullcontext()
        with gather:
            # What ``engine.forward`` does around a real forward: start-of-micro-batch bookkeeping (ZeRO-3 advances
            # its micro-step id so gradients accumulate; ZeRO-1/2 clear the last accumulation buffers), then
            # hooks on the output that run the engine's backward prologue (BF16 optimizer clears its bf16 grads).
            if hasattr(self.engine.optimizer, "clear_backward_seen_flag"):
                self.engine.optimizer.clear_backward_seen_flag()
            zero = sum(p.sum() * 0.0 for p in self.params)
            register_output_backward_hooks(zero, preprocess_once_fn=self.engine._backward_prologue,
                                           preprocess_per_tensor_fn=self.engine._backward_prologue_per_tensor)
            yield zero

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    # -- checkpoints --------------------------------------------------------------------------------------
    def save_state(self, path: Path) -> None:
        """Engine checkpoint in directory ``path``: module weights, optimizer state and ZeRO partitions (one file
        per rank), LR scheduler. Collective; ``path`` must be on a file system every rank shares."""
        path = Path(path)
        if dist.rank() == 0 and path.exists():
            shutil.rmtree(path)
        dist.barrier()
        self.engine.save_checkpoint(str(path), tag=CHECKPOINT_TAG, save_latest=False)
        dist.barrier()

    def load_state(self, path: Path) -> None:
        """Restore what ``save_state`` wrote (weights too) into this engine; same ZeRO stage and world size."""
        path = Path(path)
        if not (path / CHECKPOINT_TAG).is_dir():
            raise FileNotFoundError(f"no DeepSpeed checkpoint at {path} (expected {path / CHECKPOINT_TAG}/)")
        loaded, _ = self.engine.load_checkpoint(str(path), tag=CHECKPOINT_TAG, load_optimizer_states=True,
                                                load_lr_scheduler_states=True)
        if loaded is None:
            raise RuntimeError(f"DeepSpeed could not load the checkpoint at {path}")
        self._micro_in_step = 0

    # -- weights out ---------------------------------------------------------------------------------------
    def named_full_weights(self, include_buffers: bool = False) -> Iterator[Tuple[str, torch.Tensor]]:
        """Full HF-named tensors one parameter at a time (see the module-level ``named_full_weights``)."""
        return named_full_weights(self.model, include_buffers=include_buffers)

    def save_pretrained(self, directory: str | Path, tokenizer=None) -> None:
        """Gathered HF-format save (rank 0 writes; collective)."""
        save_pretrained(self.model, directory, tokenizer)
