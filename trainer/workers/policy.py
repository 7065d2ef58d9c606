"""The policy (actor) worker: log-probs of rollouts and the PPO update over epochs x minibatches.

The same class runs in the driver process (local placement) or inside a Ray actor (one per data-parallel
rank); the only difference is the ``Trainable`` it is given and the ``world_size`` used for normalisers.
"""
from __future__ import annotations

import contextlib

from pathlib import Path
from typing import Callable, Iterator

import torch

from trainer.algorithms import (aggregate_loss, kl_estimate, kl_loss, loss_normalizer, masked_mean,
                                policy_loss, ratio_early_stop)
from trainer.config import RLConfig
from trainer.experience import Experience
from mathrl_core.models.sequences import distinct_prompts
from trainer.models.actor import response_logprobs
from mathrl_core.models.loading import export_state_dict, load_weights
from trainer.worker_metrics import StatsAccumulator
from trainer.workers.common import is_deepspeed, minibatch_permutation, trimmed


class PolicyWorker:
    """Holds the policy model and its optimizer (through a ``Trainable``)."""

    def __init__(self, cfg: RLConfig, trainable, world_size: int = 1,
                 all_reduce_sum: Callable[[float], float] = lambda x: x):
        self.cfg = cfg
        self.trainable = trainable
        self.model = trainable.module
        self.world_size = world_size
        self.all_reduce_sum = all_reduce_sum
        self.device = next(self.model.parameters()).device

    # ---- inference -------------------------------------------------------------------------------------
    @torch.no_grad()
    def compute_logprobs(self, exp: Experience) -> torch.Tensor:
        """log pi(a_t | s_t) of the current policy for every response token, ``[B, T]`` (0 at padding)."""
        self.model.eval()
        out = []
        for mb in exp.split(self.cfg.train.micro_batch_size):
            mb = trimmed(mb).to(self.device)
            lp = response_logprobs(self.model, mb.input_ids, mb.attention_mask, mb.prompt_len,
                                   temperature=self.cfg.logprob_temperature,
                                   share_prompts=self.cfg.train.shared_prompt_forward)
            out.append(lp.float().cpu())
        return _cat_to_width(out, exp.response_mask.shape[1])


    # ---- training ----------------------------------------------------------------------------------------
    def fit(self, exp: Experience, step: int) -> dict[str, float]:
        """``ppo_epochs`` passes over ``exp`` in shuffled minibatches; one optimizer step per minibatch.

        Every micro-batch loss is normalised by the whole minibatch (``loss_normalizer``; summed over
        data-parallel ranks), so accumulation gives the gradient of one big batch. A micro-batch whose mean
        importance ratio exceeds ``algorithm.ratio_early_stop`` contributes no gradient (RLinf) and is counted.
        """
        a, t = self.cfg.algorithm, self.cfg.train
        self.model.train()
        stats = StatsAccumulator()
        mb_size = t.minibatch_size // self.world_size
        for epoch in range(t.ppo_epochs):
            for minibatch in _minibatches(exp, mb_size, t.seed, step, epoch):
                if t.shared_prompt_forward:
                    minibatch = grouped_by_prompt(minibatch)  # same minibatch gradient; micro-batches share prompts
                micros = [trimmed(m) for m in minibatch.split(t.micro_batch_size)]
                local = loss_normalizer([m.response_mask for m in micros], a.loss_agg,
                                        max_response_len=a.loss_constant or self.cfg.rollout.max_new_tokens)
                # DP averages gradients over ranks, so each rank divides by global / world_size.
                normalizer = max(self.all_reduce_sum(local), 1.0) / self.world_size
                for i, micro in enumerate(micros):
                    grad_norm = self._micro_step(micro.to(self.device), normalizer, i == len(micros) - 1, stats)
                    if grad_norm is not None:
                        stats.add("policy/grad_norm", grad_norm)
        stats.add("policy/lr", self.trainable.current_lr())
        return stats.means()

    def _micro_step(self, m: Experience, normalizer: float, boundary: bool, stats: StatsAccumulator):
        a = self.cfg.algorithm
        logp, entropy = response_logprobs(self.model, m.input_ids, m.attention_mask, m.prompt_len,
                                          temperature=self.cfg.logprob_temperature, return_entropy=True,
                                          share_prompts=self.cfg.train.shared_prompt_forward)
        mask = m.response_mask
        old = m.old_logprobs_for(logp)  # the update's own log-probs on a single on-policy update (ratio = 1)
        if a.ratio_early_stop is not None and ratio_early_stop(logp.detach(), old, mask, a.ratio_early_stop):
            stats.add("policy/early_stopped_microbatches", 1.0)
            # Zero loss that still touches the graph, so data-parallel ranks stay in step.
            return self.trainable.micro_step(logp.sum() * 0.0, boundary)
        stats.add("policy/early_stopped_microbatches", 0.0)
        loss, pstats = policy_loss(logp, old, m.advantages, mask, clip_low=a.clip_low,
                                   clip_high=a.clip_high, dual_clip=a.dual_clip, agg=a.loss_agg,
                                   normalizer=normalizer, weights=m.tis_weights)
        if self.cfg.kl_in_loss:
            loss = loss + a.kl_coef * kl_loss(logp, m.ref_logprobs, mask, kind=a.kl_estimator, agg=a.loss_agg,
                                              normalizer=normalizer)
        if a.entropy_coef > 0:
            loss = loss - a.entropy_coef * aggregate_loss(entropy, mask, a.loss_agg, normalizer)
        stats.add("policy/entropy", float(masked_mean(entropy.detach(), mask)), weight=float(mask.sum()))
        for k in ("pg_loss", "clip_frac", "clip_frac_low", "clip_frac_high", "dual_clip_frac", "ratio_mean",
                  "approx_kl"):
            if k in pstats:
                stats.add(f"policy/{k}", float(pstats[k]), weight=float(mask.sum()))
        stats.add("policy/ratio_max", float(pstats["ratio_max"]))
        stats.add("policy/ratio_min", float(pstats["ratio_min"]))
        return self.trainable.micro_step(loss, boundary)

    # ---- weights and checkpoints -------------------------------------------------------------------------
    def named_weights(self) -> dict[str, torch.Tensor]:
        """HF-named full weights (LoRA merged, tied ``lm_head`` included) for the rollout engine.
        Under DeepSpeed ZeRO-3 the parameters are gathered one at a time (a collective: call on every rank)."""
        full = getattr(self.trainable, "named_full_weights", None)
        if full is not None:
            return {k: v.detach().to("cpu", copy=True) for k, v in full()}
        return export_state_dict(self.model)

    def save(self, path: Path) -> None:
        """``path/model``: an HF checkpoint (``rl-train``/``rl-eval`` start from it); ``path/optimizer.pt`` (torch)
        or ``path/deepspeed/`` (engine checkpoint with weights, optimizer partitions and scheduler)."""
        path.mkdir(parents=True, exist_ok=True)
        if is_deepspeed(self.trainable):
            self.trainable.save_pretrained(path / "model")
            self.trainable.save_state(path / "deepspeed")
        else:
            self.model.save_pretrained(path / "model")
            self.trainable.save_state(path / "optimizer.pt")

    def load(self, path: Path) -> None:
        if is_deepspeed(self.trainable):
            self.trainable.load_state(path / "deepspeed")  # weights included
            return
        from safetensors.torch import load_file

        files = sorted((path / "model").glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"no model weights under {path / 'model'}")
        state = {}
        for f in files:
            state.update(load_file(str(f)))
        if hasattr(self.model, "peft_config"):
            from peft import set_peft_model_state_dict
            set_peft_model_state_dict(self.model, state)
        else:
            load_weights(self.model, state)
        self.trainable.load_state(path / "optimizer.pt")


class ReferenceWorker:
    """A frozen copy of the initial policy for the KL term."""

    def __init__(self, cfg: RLConfig, model, adapters_off: bool = False):
        """``adapters_off``: ``model`` is the LoRA policy itself; the reference is its frozen base, read with
        the adapters disabled (peft ``disable_adapter``)."""
        self.cfg = cfg
        self.model = model
        self.adapters_off = adapters_off
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def compute_logprobs(self, exp: Experience) -> torch.Tensor:
        out = []
        t = self.cfg.logprob_temperature
        was_training = self.model.training
        self.model.eval()
        with (self.model.disable_adapter() if self.adapters_off else contextlib.nullcontext()):
            for mb in exp.split(self.cfg.train.micro_batch_size):
                mb = trimmed(mb).to(self.device)
                out.append(response_logprobs(self.model, mb.input_ids, mb.attention_mask, mb.prompt_len,
                                             temperature=t, share_prompts=self.cfg.train.shared_prompt_forward
                                             ).float().cpu())
        self.model.train(was_training)
        return _cat_to_width(out, exp.response_mask.shape[1])


def _minibatches(exp: Experience, size: int, seed: int, step: int, epoch: int) -> Iterator[Experience]:
    perm = minibatch_permutation(exp.batch_size, seed, step, epoch)
    for s in range(0, exp.batch_size, size):
        yield exp.select(perm[s:s + size])


def grouped_by_prompt(exp: Experience) -> Experience:
    """The same rows, reordered so that rows with the same prompt are adjacent (first-appearance order of the
    prompts, rows of a prompt in their original order). A minibatch's gradient is the sum over its micro-batches
    whatever their order; grouped, a micro-batch holds few distinct prompts for the shared-prompt forward."""
    if exp.batch_size < 2:
        return exp
    first, inverse = distinct_prompts(exp.input_ids, exp.attention_mask, exp.prompt_len)
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(first.numel())  # prompts in order of their first row
    return exp.select(torch.sort(rank[inverse], stable=True).indices)


def _cat_to_width(parts: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])


def mean_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kind: str) -> float:
    """Mean per-token KL estimate between the policy and the reference (a metric)."""
    return float(masked_mean(kl_estimate(logprobs, ref_logprobs, kind), mask))

