"""The critic worker: state values of rollouts and the clipped value-regression update (PPO with GAE)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from trainer.algorithms import loss_normalizer, value_loss
from trainer.config import RLConfig
from trainer.experience import Experience
from trainer.models.critic import Critic, response_values
from trainer.worker_metrics import StatsAccumulator
from trainer.workers.common import is_deepspeed, minibatch_permutation, trimmed


class CriticWorker:
    def __init__(self, cfg: RLConfig, trainable, world_size: int = 1,
                 all_reduce_sum: Callable[[float], float] = lambda x: x):
        self.cfg = cfg
        self.trainable = trainable
        self.model: Critic = trainable.module
        self.world_size = world_size
        self.all_reduce_sum = all_reduce_sum
        self.device = next(self.model.parameters()).device

    @torch.no_grad()
    def compute_values(self, exp: Experience) -> torch.Tensor:
        """V(s_t) before each response token, ``[B, T]`` (0 at padding)."""
        self.model.eval()
        out = []
        for mb in exp.split(self.cfg.train.micro_batch_size):
            mb = trimmed(mb).to(self.device)
            v = response_values(self.model, mb.input_ids, mb.attention_mask, mb.prompt_len).float().cpu()
            out.append(torch.nn.functional.pad(v, (0, exp.response_mask.shape[1] - v.shape[1])))
        return torch.cat(out)

    def fit(self, exp: Experience, step: int) -> dict[str, float]:
        """Minimise 0.5 * max((V - R)^2, (clip(V, V_old +- eps) - R)^2) over the same minibatch schedule as the
        policy (token-mean over the minibatch)."""
        a, t = self.cfg.algorithm, self.cfg.train
        self.model.train()
        stats = StatsAccumulator()
        mb_size = t.minibatch_size // self.world_size
        for epoch in range(t.ppo_epochs):
            perm = minibatch_permutation(exp.batch_size, t.seed + 1, step, epoch)
            for s in range(0, exp.batch_size, mb_size):
                micros = [trimmed(m) for m in exp.select(perm[s:s + mb_size]).split(t.micro_batch_size)]
                normalizer = max(self.all_reduce_sum(
                    loss_normalizer([m.response_mask for m in micros], "token_mean")), 1.0) / self.world_size
                for i, m in enumerate(micros):
                    m = m.to(self.device)
                    values = response_values(self.model, m.input_ids, m.attention_mask, m.prompt_len)
                    loss, vstats = value_loss(values, m.values, m.returns, m.response_mask, clip=a.value_clip,
                                              agg="token_mean", normalizer=normalizer)
                    w = float(m.response_mask.sum())
                    stats.add("critic/value_loss", float(vstats["vf_loss"]), weight=w)
                    stats.add("critic/value_clip_frac", float(vstats["vf_clip_frac"]), weight=w)
                    grad_norm = self.trainable.micro_step(loss, i == len(micros) - 1)
                    if grad_norm is not None:
                        stats.add("critic/grad_norm", grad_norm)
        stats.add("critic/lr", self.trainable.current_lr())
        return stats.means()

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if is_deepspeed(self.trainable):
            self.trainable.save_state(path / "deepspeed")  # weights, optimizer partitions, scheduler
            return
        self.model.save_pretrained(str(path / "model"))
        self.trainable.save_state(path / "optimizer.pt")

    def load(self, path: Path) -> None:
        if is_deepspeed(self.trainable):
            self.trainable.load_state(path / "deepspeed")
            return
        loaded = Critic.from_pretrained(str(path / "model"), dtype=next(self.model.parameters()).dtype)
        self.model.load_state_dict(loaded.state_dict())
        self.trainable.load_state(path / "optimizer.pt")
