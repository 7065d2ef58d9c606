"""Loading tokenizers and causal LMs through the real Hugging Face code paths.

Hub ids and local directories both go through ``from_pretrained``; nothing here special-cases the tiny test
models. A GGUF model (a ``.gguf`` file, or a directory holding one) is first resolved to its converted HF
directory (``mathrl_core.models.gguf``: dequantised once, cached by checksum). LoRA is applied with peft when a :class:`LoraSpec` is given.

4-bit base weights (QLoRA, ``load_in_4bit=True``): the frozen base is quantised to NF4 by bitsandbytes while it
loads (``BitsAndBytesConfig``: NF4, double quantisation, bf16 compute), ``peft.prepare_model_for_kbit_training``
readies it for training, and only the LoRA adapters train. bitsandbytes' 4-bit kernels need a CUDA GPU, so on a
CPU, or without the ``bitsandbytes`` package, loading stops with an error that says so.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from mathrl_core.models.gguf import resolve_model_path

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


@dataclass
class LoraSpec:
    """LoRA settings (peft). ``target_modules`` is a list of module-name suffixes or ``"all-linear"``."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])

    def __post_init__(self):
        if self.rank <= 0:
            raise ValueError(f"lora.rank must be > 0, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")

    def to_peft(self, task_type: str | None):
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type=task_type, bias="none")


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` → ``torch.bfloat16`` (also accepts bf16/fp16/fp32 and torch dtypes)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def load_tokenizer(name_or_path: str, padding_side: str = "left", trust_remote_code: bool = False):
    """Load a tokenizer, set ``padding_side`` and make sure it has a pad token (falls back to eos)."""
    from transformers import AutoTokenizer

    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    name_or_path = resolve_model_path(name_or_path)
    tok = AutoTokenizer.from_pretrained(name_or_path, padding_side=padding_side,
                                        trust_remote_code=trust_remote_code)
    tok.padding_side = padding_side
    if tok.pad_token_id is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer {name_or_path!r} has neither a pad token nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Non-reentrant activation checkpointing (works with frozen inputs, LoRA and ``torch.no_grad`` parts)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False  # the KV cache is useless (and warned about) when recomputing activations


def apply_lora(model: nn.Module, lora: LoraSpec, task_type: str | None = "CAUSAL_LM") -> nn.Module:
    """Wrap ``model`` with peft LoRA adapters; only adapter weights stay trainable."""
    from peft import get_peft_model

    return get_peft_model(model, lora.to_peft(task_type))


def quantization_config_4bit(compute_dtype: str | torch.dtype = "bfloat16"):
    """The ``BitsAndBytesConfig`` of a QLoRA base model: NF4 weights with double quantisation (the quantisation
    constants are quantised too, ~0.4 bit/parameter saved) and matmuls computed in ``compute_dtype``."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch_dtype(compute_dtype))


def resolve_4bit_device(device: str | torch.device | None = None) -> torch.device:
    """The CUDA device a 4-bit model loads onto; a clear error on CPU or without bitsandbytes."""
    import importlib.util

    dev = torch.device(device) if device is not None else None
    if dev is None or dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("model.lora.load_in_4bit needs a CUDA GPU: bitsandbytes' 4-bit kernels do not run on "
                             "this machine (no CUDA device). Set model.lora.load_in_4bit=false to train LoRA on "
                             "full-precision base weights instead")
        dev = torch.device("cuda", torch.cuda.current_device() if dev is None or dev.index is None else dev.index)
    else:
        raise ValueError(f"model.lora.load_in_4bit needs a CUDA device, but this run's device is {dev} "
                         f"(train.device); 4-bit bitsandbytes weights cannot be placed on {dev.type}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError("model.lora.load_in_4bit needs the bitsandbytes package: pip install 'mathrl[gpu]' "
                          "(or pip install 'bitsandbytes>=0.45')")
    return dev


def load_causal_lm(
    name_or_path: str,
    dtype: str | torch.dtype = "float32",
    gradient_checkpointing: bool = False,
    lora: LoraSpec | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    device: str | torch.device | None = None,
    load_in_4bit: bool = False,
) -> nn.Module:
    """Load any HF causal LM (hub id, local dir or GGUF model) with the given dtype and options.

    Returns the HF model, or a peft ``PeftModel`` wrapping it when ``lora`` is given. With ``load_in_4bit`` the
    base weights are quantised to NF4 on a CUDA device (bf16 compute, fp16 if ``dtype`` is float16) and ``lora``
    is required: 4-bit weights are frozen, the adapters are what trains.
    """
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        if lora is None:
            raise ValueError("model.lora.load_in_4bit: 4-bit base weights cannot be trained; set model.lora.rank > 0 "
                             "so that LoRA adapters train on top of them")
        dev = resolve_4bit_device(device)
        compute = torch.float16 if torch_dtype(dtype) == torch.float16 else torch.bfloat16
        kwargs["quantization_config"] = quantization_config_4bit(compute)
        kwargs["device_map"] = {"": dev.index}  # bitsandbytes quantises while placing; .to() after is refused
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path), **kwargs)
    if load_in_4bit:
        from peft import prepare_model_for_kbit_training

        # fp32 norms/embeddings and input grads so that checkpointed layers backpropagate into the adapters
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        if gradient_checkpointing and getattr(model, "config", None) is not None:
            model.config.use_cache = False
    else:
        if device is not None:
            model.to(device)
        if gradient_checkpointing:
            enable_gradient_checkpointing(model)
    if lora is not None:
        model = apply_lora(model, lora)
    return model


def load_hf_model(path: str, *, dtype: str = "float32", device: str | torch.device | None = None,
                  trust_remote_code: bool = False) -> nn.Module:
    """A causal LM to generate with (eval), from a model directory or hub id; a peft LoRA adapter directory is
    loaded onto its base model (``base_model_name_or_path``) and merged."""
    path = resolve_model_path(path)
    adapter = os.path.join(path, "adapter_config.json")
    if not os.path.isfile(adapter):
        return load_causal_lm(path, dtype=dtype, trust_remote_code=trust_remote_code, device=device)
    from peft import PeftModel

    with open(adapter, encoding="utf-8") as f:
        base = json.load(f).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter} does not name its base model (base_model_name_or_path)")
    model = load_causal_lm(base, dtype=dtype, trust_remote_code=trust_remote_code, device=device)
    return PeftModel.from_pretrained(model, path).merge_and_unload()


def is_quantized(model: nn.Module) -> bool:
    """True when some weight of ``model`` is a bitsandbytes 4-/8-bit parameter (packed, not a plain tensor)."""
    return any(type(p).__name__ in ("Params4bit", "Int8Params") for p in model.parameters())


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` everywhere (reference models)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_reference(name_or_path: str, dtype: str | torch.dtype = "float32", **kwargs) -> nn.Module:
    """A frozen causal LM for reference log-probs (use with ``response_logprobs`` under ``torch.no_grad()``)."""
    return freeze(load_causal_lm(name_or_path, dtype=dtype, **kwargs))


def unwrap_model(model: nn.Module) -> nn.Module:
    """The underlying HF model of a peft/DDP/DeepSpeed wrapper (identity for a plain HF model)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP / DeepSpeed engine
            model = model.module
        elif hasattr(model, "get_base_model"):  # peft
            model = model.get_base_model()
        else:
            return model


@torch.no_grad()
def export_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """HF-named weights of ``model`` with any LoRA adapters merged in, without modifying the model.

    This is what a rollout engine (HF or vLLM) needs after an update: the keys of the plain HF model's
    ``state_dict()`` (which, unlike ``named_parameters()``, also holds ``lm_head.weight`` for tied embeddings).
    Without LoRA the tensors alias the model's parameters (no copy): copy them before mutating.
    """
    base = unwrap_model(model)
    if is_quantized(base):
        raise ValueError("export_state_dict: the model has bitsandbytes-quantised base weights; their packed tensors "
                         "are not HF weights a rollout engine can load. Use rollout.backend=hf (generation with the "
                         "training model itself) for 4-bit LoRA runs")
    deltas: dict[str, torch.Tensor] = {}
    for name, module in base.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            if getattr(module, "merged", False) or getattr(module, "disable_adapters", False):
                continue
            delta = None
            for adapter in module.active_adapters:
                if adapter in getattr(module, "lora_A", {}):
                    d = module.get_delta_weight(adapter)
                    delta = d if delta is None else delta + d
            if delta is not None:
                deltas[f"{name}.weight"] = delta
    out: dict[str, torch.Tensor] = {}
    for key, value in base.state_dict().items():
        if ".lora_" in key or ".original_module." in key:
            continue
        clean = key.replace(".base_layer.", ".")
        if ".modules_to_save." in clean:  # peft modules_to_save copies: "x.modules_to_save.default.w" -> "x.w"
            head, tail = clean.split(".modules_to_save.", 1)
            clean = f"{head}.{tail.split('.', 1)[1]}"
        if clean in deltas:
            value = value + deltas[clean].to(value.dtype)
        out[clean] = value
    return out


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy HF-named tensors (e.g. from :func:`export_state_dict`) into a plain HF model in place.

    A subset of the keys may be given; unknown keys or shape mismatches raise before anything is copied.
    """
    target = unwrap_model(model).state_dict()
    unknown = [k for k in state_dict if k not in target]
    if unknown:
        raise KeyError(f"load_weights: {len(unknown)} unknown parameter name(s), e.g. {unknown[:5]}")
    bad = [k for k, v in state_dict.items() if tuple(v.shape) != tuple(target[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(f"load_weights: shape mismatch for {k}: got {tuple(state_dict[k].shape)}, "
                         f"model has {tuple(target[k].shape)} ({len(bad)} mismatched)")
    with torch.no_grad():
        for k, v in state_dict.items():
            target[k].copy_(v.to(device=target[k].device, dtype=target[k].dtype))
