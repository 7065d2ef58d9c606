"""Critic: an LM backbone (``AutoModel`` of a causal-LM checkpoint) plus a linear value head.

``response_values`` is aligned with ``response_logprobs``: value ``t`` is V(s_t), the value of the state in
which response token ``t`` is about to be generated, read from the hidden state of column ``P + t - 1``.

Saved layout (``save_pretrained(dir)``)::

    dir/config.json, model.safetensors ...   the backbone in HF format (or adapter_* files with LoRA)
    dir/value_head.safetensors               {"weight": [1, H], "bias": [1]}
    dir/critic.json                          {"hidden_size": H, "lora": bool, "base_model": ...}
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from mathrl_core.models.gguf import resolve_model_path
from mathrl_core.models.sequences import position_ids_from_mask
from mathrl_core.models.loading import LoraSpec, apply_lora, enable_gradient_checkpointing, torch_dtype

VALUE_HEAD_FILE = "value_head.safetensors"
CRITIC_META_FILE = "critic.json"


class Critic(nn.Module):
    """Backbone + ``Linear(hidden, 1)`` value head."""

    def __init__(self, backbone: nn.Module, hidden_size: int, base_model: str | None = None):
        super().__init__()
        self.backbone = backbone
        self.value_head = nn.Linear(hidden_size, 1)
        self.base_model = base_model
        dtype = next(backbone.parameters()).dtype
        self.value_head.to(dtype)

    @property
    def is_lora(self) -> bool:
        return hasattr(self.backbone, "peft_config")

    @classmethod
    def from_model(cls, name_or_path: str, dtype: str | torch.dtype = "float32", gradient_checkpointing=False,
                   lora: LoraSpec | None = None, attn_implementation: str | None = None,
                   trust_remote_code: bool = False, seed: int | None = 0) -> "Critic":
        """A new critic whose backbone is initialised from a (causal LM) checkpoint; the head is fresh.

        The head starts at weight ~ N(0, 1/(H+1)) (as in OpenRLHF) and bias 0, deterministic given ``seed``.
        """
        backbone = _load_backbone(name_or_path, dtype, attn_implementation, trust_remote_code)
        hidden = _hidden_size(backbone)
        critic = cls(backbone, hidden, base_model=str(name_or_path))
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            w = torch.randn(critic.value_head.weight.shape, generator=gen) / (hidden + 1)
            critic.value_head.weight.copy_(w)
            critic.value_head.bias.zero_()
        critic._finish_setup(gradient_checkpointing, lora)
        return critic

    @classmethod
    def from_pretrained(cls, path: str, dtype: str | torch.dtype = "float32", gradient_checkpointing=False,
                        attn_implementation: str | None = None, trust_remote_code: bool = False,
                        is_trainable: bool = True) -> "Critic":
        """Load a critic written by :meth:`save_pretrained` (plain or LoRA)."""
        from safetensors.torch import load_file

        path = Path(path)
        head_file = path / VALUE_HEAD_FILE
        if not head_file.exists():
            raise FileNotFoundError(f"{head_file} not found: {path} is not a saved critic "
                                    f"(use Critic.from_model to start a critic from an LM checkpoint)")
        meta = json.loads((path / CRITIC_META_FILE).read_text()) if (path / CRITIC_META_FILE).exists() else {}
        if (path / "adapter_config.json").exists():
            from peft import PeftModel

            base = meta.get("base_model") or json.loads((path / "adapter_config.json").read_text()).get(
                "base_model_name_or_path")
            if not base:
                raise ValueError(f"{path}: LoRA critic without a base model path")
            backbone = _load_backbone(base, dtype, attn_implementation, trust_remote_code)
            if gradient_checkpointing:
                enable_gradient_checkpointing(backbone)
            backbone = PeftModel.from_pretrained(backbone, str(path), is_trainable=is_trainable)
        else:
            backbone = _load_backbone(str(path), dtype, attn_implementation, trust_remote_code)
            base = meta.get("base_model")
            if gradient_checkpointing:
                enable_gradient_checkpointing(backbone)
        critic = cls(backbone, _hidden_size(backbone), base_model=base)
        state = load_file(str(head_file))
        critic.value_head.load_state_dict({k: v.to(critic.value_head.weight.dtype) for k, v in state.items()})
        return critic

    def _finish_setup(self, gradient_checkpointing: bool, lora: LoraSpec | None):
        if gradient_checkpointing:
            enable_gradient_checkpointing(self.backbone)
        if lora is not None:
            self.backbone = apply_lora(self.backbone, lora, task_type="FEATURE_EXTRACTION")

    def save_pretrained(self, path: str) -> None:
        """Backbone in HF format (adapter files when LoRA), the value head and a small metadata file."""
        from safetensors.torch import save_file

        os.makedirs(path, exist_ok=True)
        self.backbone.save_pretrained(path)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.value_head.state_dict().items()},
                  os.path.join(path, VALUE_HEAD_FILE))
        meta = {"hidden_size": self.value_head.in_features, "lora": self.is_lora, "base_model": self.base_model}
        Path(path, CRITIC_META_FILE).write_text(json.dumps(meta, indent=2))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Values for every column: ``[B, L]``."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids_from_mask(attention_mask), use_cache=False)
        return self.value_head(out.last_hidden_state).squeeze(-1)


def response_values(critic: Critic, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int,
                    micro_batch_size: int | None = None) -> torch.Tensor:
    """V(s_t) for each response column t (hidden state of column ``P + t − 1``) → ``[B, T]``, 0 at padding.

    Returned in float32; differentiable unless called under ``torch.no_grad()``.
    """
    if prompt_len < 1:
        raise ValueError("prompt_len must be >= 1")
    B, L = input_ids.shape
    T = L - prompt_len
    mb = micro_batch_size or B
    outs = []
    for s in range(0, B, mb):
        ids, mask = input_ids[s:s + mb], attention_mask[s:s + mb]
        # Through ``critic(...)`` (its forward), so a DeepSpeed engine wrapping the critic sees the forward.
        v = critic(input_ids=ids, attention_mask=mask)[:, prompt_len - 1:L - 1].float()
        outs.append(torch.where(mask[:, prompt_len:].bool(), v, torch.zeros_like(v)))
    return torch.cat(outs, 0) if outs else input_ids.new_zeros((0, T), dtype=torch.float32)


def _load_backbone(name_or_path: str, dtype, attn_implementation, trust_remote_code) -> nn.Module:
    from transformers import AutoModel

    kwargs = {"dtype": torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return AutoModel.from_pretrained(resolve_model_path(name_or_path), **kwargs)


def _hidden_size(backbone: nn.Module) -> int:
    cfg = backbone.config
    if hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()
    return int(cfg.hidden_size)
