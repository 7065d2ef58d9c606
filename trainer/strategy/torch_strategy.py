"""Plain-torch training: AdamW, gradient clipping, LambdaLR schedule, optimizer state save/load."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Protocol

import torch


class Trainable(Protocol):
    module: torch.nn.Module

    def micro_step(self, loss: torch.Tensor, boundary: bool) -> Optional[float]: ...
    def current_lr(self) -> float: ...
    def save_state(self, path: Path) -> None: ...
    def load_state(self, path: Path) -> None: ...


def build_optimizer(module: torch.nn.Module, lr: float, weight_decay: float, betas) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (biases and norms excluded, as in nanoGPT/OpenRLHF)."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        ndim = len(getattr(p, "ds_shape", p.shape))  # a ZeRO-3 partitioned parameter is 1-D; ds_shape is its shape
        (decay if ndim >= 2 and "norm" not in name.lower() else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=tuple(betas))


class TorchTrainable:
    """One module + AdamW + LambdaLR in this process."""

    def __init__(self, module: torch.nn.Module, lr: float, weight_decay: float, betas, max_grad_norm: float,
                 lr_lambda: Callable[[int], float]):
        self.module = module
        self.max_grad_norm = max_grad_norm
        self.optimizer = build_optimizer(module, lr, weight_decay, betas)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda)
        self.params = [p for p in module.parameters() if p.requires_grad]

    def micro_step(self, loss: torch.Tensor, boundary: bool) -> Optional[float]:
        """Accumulate ``d loss``; at a boundary clip the global grad norm, step optimizer and schedule."""
        if loss.requires_grad:
            loss.backward()
        if not boundary:
            return None
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm if self.max_grad_norm > 0 else float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def save_state(self, path: Path) -> None:
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}, path)

    def load_state(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
