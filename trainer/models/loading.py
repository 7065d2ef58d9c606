"""Loading tokenizers and causal LMs through the real Hugging Face code paths.

Hub ids and local directories both go through ``from_pretrained``; nothing here special-cases the tiny test
models. LoRA is applied with peft when a :class:`LoraSpec` is given.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

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


def load_causal_lm(
    name_or_path: str,
    dtype: str | torch.dtype = "float32",
    gradient_checkpointing: bool = False,
    lora: LoraSpec | None = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Load any HF causal LM (hub id or local dir) with the given dtype and options.

    Returns the HF model, or a peft ``PeftModel`` wrapping it when ``lora`` is given.
    """
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    if device is not None:
        model.to(device)
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if lora is not None:
        model = apply_lora(model, lora)
    return model


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
