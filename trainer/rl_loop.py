"""The RL loop. One step, as data:

    prompts -> rollout.generate (n per prompt) -> reward service (one batched call) -> [dynamic sampling]
    -> old / reference log-probs, critic values -> advantages -> policy (and critic) updates
    -> weights synced to the rollout engine -> metrics, eval, checkpoint

The workers (policy, reference, critic, rollout) are whatever the builder hands in: local objects in this
process or Ray actor groups with the same methods. The loop never asks which.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Optional

import torch

from mathrl_core.rollout.base import RolloutOutput
from mathrl_core.sampling import SamplingConfig
from mathrl_core.templates import build_prompt
from mathrl_core.tools.metrics import tool_metrics
from trainer import checkpoint
from trainer.algorithms import (explained_variance, filter_uniform_groups, kl_estimate, logprob_mismatch_stats,
                                masked_mean, neutral_rewards, off_policy_weights, overlong_filter_mask,
                                overlong_reward_shaping)
from trainer.algorithms.estimators import AdvantageInputs, get_estimator
from trainer.config import RLConfig
from trainer.experience import Experience, ScoredRollout
from trainer.rollout_metrics import length_stats, reflection_rate, verdict_rates

logger = logging.getLogger(__name__)


def compute_advantages(exp: Experience, cfg: RLConfig) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Advantages ``[B, T]`` (and critic returns) by the estimator ``algorithm.advantage``
    (``trainer.algorithms.estimators``), with the per-token KL penalty when KL goes into the reward."""
    a = cfg.algorithm
    kl = kl_estimate(exp.old_logprobs, exp.ref_logprobs, a.kl_estimator) if cfg.kl_in_reward else None
    return get_estimator(a.advantage).compute(AdvantageInputs(
        rewards=exp.rewards, mask=exp.response_mask, group_size=cfg.rollout.n, gamma=a.gamma, lam=a.lam,
        group_eps=a.group_eps, whiten=a.whiten_advantages, kl=kl, kl_coef=a.kl_coef, values=exp.values))


class PhaseTimer:
    def __init__(self):
        self.seconds = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t0


class RLLoop:
    def __init__(self, cfg: RLConfig, *, tokenizer, data, rollout, reward, policy, ref=None, critic=None,
                 tracker=None, eval_fn: Optional[Callable[[int], dict]] = None, total_steps: int,
                 start_step: int = 0):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.data = data
        self.rollout = rollout
        self.reward = reward
        self.policy = policy
        self.ref = ref
        self.critic = critic
        self.tracker = tracker
        self.eval_fn = eval_fn
        t = cfg.train
        # One update per rollout, by the very weights that sampled it: the "old" log-probs are the update's own
        # (detached) log-probs, ratio = 1 exactly, so their separate forward pass is skipped (TRL does the same
        # for num_iterations=1). Needs: the rollout is the policy module (no engine to check against), one
        # epoch of one minibatch, no reference (KL) and no off-policy correction (both read the old log-probs
        # before the update).
        self.old_logprobs_from_update = (rollout.shares_policy and ref is None and t.ppo_epochs == 1
                                         and t.minibatch_size >= cfg.samples_per_step and cfg.off_policy is None)
        self.total_steps = total_steps
        self.step_num = start_step
        self.run_id = checkpoint.new_run_id()  # restore() continues the checkpoint's run
        if cfg.uses_critic and critic is None:
            raise ValueError(f"algorithm.advantage={cfg.algorithm.advantage} needs a critic worker")
        if cfg.uses_reference and ref is None:
            raise ValueError("algorithm.kl_coef > 0 needs a reference worker")

    # ---- the loop -----------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        history = []
        if self.step_num > 0:
            self.sync_weights()  # a resumed run: the rollout engine must generate with the resumed weights
        while self.step_num < self.total_steps:
            step = self.step_num + 1
            metrics = self.train_step(step)
            self.step_num = step
            if self.eval_fn and self.cfg.eval.every_steps and (step % self.cfg.eval.every_steps == 0
                                                               or step == self.total_steps):
                metrics.update(self.eval_fn(step))
            if self.tracker:
                self.tracker.log(step, metrics)
            history.append(metrics)
            save_every = self.cfg.logging.save_steps
            if (save_every and step % save_every == 0) or step == self.total_steps:
                self.save(step)
        return history

    def train_step(self, step: int) -> dict:
        timer = PhaseTimer()
        t0 = time.perf_counter()
        scored, gen_stats = self.collect(step, timer)
        self._rollout_sleep(True)  # colocated vLLM frees its GPU memory while the trainer works
        exp = self.make_experience(scored, timer)
        metrics = {**gen_stats, **self.experience_metrics(exp, scored.out)}
        with timer("train"):
            if self.critic is not None:
                metrics.update(self.critic.fit(exp, step))
            metrics.update(self.policy.fit(exp, step))
        with timer("sync"):
            self._rollout_sleep(False)
            self.sync_weights()
        for phase, s in timer.seconds.items():
            metrics[f"time/{phase}"] = s
        metrics["time/step"] = time.perf_counter() - t0
        generated = float(sum(scored.out.response_lengths))
        metrics["throughput/tokens_per_s"] = generated / max(metrics["time/step"], 1e-9)
        metrics["throughput/generate_tokens_per_s"] = generated / max(timer.seconds["generate"], 1e-9)
        metrics["throughput/samples_per_s"] = len(scored) / max(metrics["time/step"], 1e-9)
        return metrics

    # ---- phases -------------------------------------------------------------------------------------------
    def sampling(self, step: int, round_: int) -> SamplingConfig:
        r = self.cfg.rollout
        return SamplingConfig(n=r.n, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              max_new_tokens=r.max_new_tokens, stop=list(r.stop),
                              include_stop_str_in_output=r.include_stop_str_in_output,
                              seed=step_seed(self.cfg.train.seed, step, round_))

    def collect(self, step: int, timer: PhaseTimer) -> tuple[ScoredRollout, dict]:
        """Generate and score ``prompts_per_step`` groups. With DAPO dynamic sampling, groups whose rewards are
        all equal are dropped and more prompts are drawn (at most ``dynamic_sampling_max_rounds`` rounds);
        if still short, dropped groups fill the batch (they carry zero group advantage)."""
        a, r = self.cfg.algorithm, self.cfg.rollout
        n, want = r.n, r.prompts_per_step
        kept: list[ScoredRollout] = []     # one entry per group of n samples
        dropped: list[ScoredRollout] = []
        rounds_seen: list[ScoredRollout] = []
        rounds = retries = 0
        while True:
            rounds += 1
            records = self.data.next_batch()
            prompts = [build_prompt(self.tokenizer, rec.question, self.cfg.data.template) for rec in records]
            with timer("generate"):
                out = self.rollout.generate(prompts, self.sampling(step, rounds))
            golds = [records[i].answer for i in out.prompt_index]
            with timer("reward"):
                graded = self.reward.score(out.texts, golds)
            batch = ScoredRollout(out, golds, graded.rewards, graded.verdicts, graded.timed_out)
            retries += sum(graded.retries)
            rounds_seen.append(batch)
            rewards = torch.tensor(batch.rewards, dtype=torch.float32)
            keep = (filter_uniform_groups(rewards, n) if a.dynamic_sampling
                    else torch.ones(len(batch), dtype=torch.bool))
            for g in range(len(batch) // n):
                (kept if bool(keep[g * n]) else dropped).append(batch.select(range(g * n, (g + 1) * n)))
            if not a.dynamic_sampling or len(kept) >= want or rounds >= a.dynamic_sampling_max_rounds:
                break
        seen = ScoredRollout.concat(rounds_seen)
        stats = {"reward/mean": sum(seen.rewards) / max(len(seen), 1), **verdict_rates(seen.verdicts),
                 **length_stats(seen.out.response_lengths, seen.out.finish_reasons),
                 "response/reflection_rate": reflection_rate(seen.out.texts),
                 # an infrastructure fault, not a worse policy: graded wrong (or left out) without a verdict
                 "reward/timeout_rate": sum(seen.timed_out) / max(len(seen), 1),
                 "reward/retry_rate": retries / max(len(seen), 1)}
        if seen.out.infos is not None:  # multi-turn tool use: calls, errors, timeouts, accuracy by tool use
            stats.update(tool_metrics(seen.out.infos, seen.verdicts))
        if a.dynamic_sampling:
            filled = max(0, want - len(kept))
            stats.update({"dynamic_sampling/rounds": float(rounds), "dynamic_sampling/filled_groups": float(filled),
                          "dynamic_sampling/kept_groups_frac": len(kept) / max(len(kept) + len(dropped), 1)})
            if filled:
                logger.warning("dynamic sampling: only %d/%d groups with mixed rewards after %d rounds; filling "
                               "with %d uniform groups", len(kept), want, rounds, filled)
        return ScoredRollout.concat((kept + dropped)[:want]), stats

    def make_experience(self, scored: ScoredRollout, timer: PhaseTimer) -> Experience:
        a, r = self.cfg.algorithm, self.cfg.rollout
        out = scored.out
        batch, rollout_lp = out.to_batch(self.tokenizer.pad_token_id)
        # the policy's own tokens: tool output inserted into a response stays out of loss, KL and entropy
        mask = out.loss_mask_tensor(batch.response_mask.shape[1]) * batch.response_mask.float()
        truncated = torch.tensor([f == "length" for f in out.finish_reasons])
        rewards = torch.tensor(scored.rewards, dtype=torch.float32)
        if a.overlong_buffer > 0:
            lengths = torch.tensor(out.response_lengths, dtype=torch.float32)
            rewards = rewards + overlong_reward_shaping(lengths, r.max_new_tokens, a.overlong_buffer,
                                                        a.overlong_penalty)
        if a.overlong_filter:
            mask = overlong_filter_mask(truncated, mask).float()
        if self.cfg.reward.exclude_timeouts and any(scored.timed_out):
            timed_out = torch.tensor(scored.timed_out)
            rewards = neutral_rewards(rewards, timed_out, r.n)
            mask = mask * (~timed_out).float().unsqueeze(1)
        exp = Experience(input_ids=batch.input_ids, attention_mask=batch.attention_mask, response_mask=mask,
                         prompt_len=batch.prompt_len, rewards=rewards, truncated=truncated,
                         rollout_logprobs=rollout_lp, old_logprobs_from_update=self.old_logprobs_from_update)
        with timer("reference"):
            if not self.old_logprobs_from_update:
                exp.old_logprobs = self.old_logprobs(exp)
            if self.ref is not None:
                exp.ref_logprobs = self.ref.compute_logprobs(exp)
            if self.critic is not None:
                exp.values = self.critic.compute_values(exp)
        exp.advantages, exp.returns = compute_advantages(exp, self.cfg)
        if self.cfg.off_policy is not None:  # behaviour (rollout) vs proximal (old) policy: decoupled PPO weights
            kind, cap = self.cfg.off_policy
            exp.tis_weights, exp.info["off_policy"] = off_policy_weights(kind, exp.old_logprobs, exp.rollout_logprobs,
                                                                         mask, cap)
        return exp

    def old_logprobs(self, exp: Experience):
        """PPO's old log-probs: the policy's own, before this step's update (the proximal policy)."""
        return self.policy.compute_logprobs(exp)

    def experience_metrics(self, exp: Experience, out: RolloutOutput) -> dict:
        a = self.cfg.algorithm
        mask = exp.response_mask
        m = {"reward/shaped_mean": float(exp.rewards.mean()),
             "advantage/mean": float(masked_mean(exp.advantages, mask)),
             "advantage/abs_mean": float(masked_mean(exp.advantages.abs(), mask))}
        if exp.ref_logprobs is not None:
            m["policy/kl"] = float(masked_mean(kl_estimate(exp.old_logprobs, exp.ref_logprobs, a.kl_estimator), mask))
        if exp.old_logprobs is not None:
            raw_mask = out.loss_mask_tensor(mask.shape[1])  # every sampled token (also overlong-filtered ones)
            mismatch = logprob_mismatch_stats(exp.old_logprobs, exp.rollout_logprobs, raw_mask)
            m["rollout/logprob_max_abs_diff"] = float(mismatch["max_abs_diff"])
            m["rollout/logprob_mean_abs_diff"] = float(mismatch["mean_abs_diff"])
            m["rollout/trainer_kl_k3"] = float(mismatch["k3_kl"])  # KL(rollout || trainer) on the sampled tokens
            if not self.rollout.shares_policy:
                m["weight_sync_max_abs_logprob_diff"] = m["rollout/logprob_max_abs_diff"]
        for k, v in exp.info.get("off_policy", {}).items():
            m[f"off_policy/{k}"] = float(v)
        if exp.values is not None:
            m["critic/explained_variance"] = float(explained_variance(exp.values, exp.returns, mask))
            m["critic/values_mean"] = float(masked_mean(exp.values, mask))
        return m

    def _rollout_sleep(self, asleep: bool) -> None:
        """``rollout.enable_sleep``: vLLM's sleep mode between generations (a no-op where the backend lacks it)."""
        if self.cfg.rollout.enable_sleep:
            (self.rollout.sleep if asleep else self.rollout.wake_up)()

    def sync_weights(self) -> None:
        """The rollout engine takes the policy's weights (its own route: NCCL, object store, in-process)."""
        self.rollout.sync_from(self.policy)

    # ---- checkpoints --------------------------------------------------------------------------------------
    def save(self, step: int) -> None:
        tmp = checkpoint.begin(self.cfg.logging.output_dir, step)
        self.policy.save(tmp / "policy")
        if self.critic is not None:
            self.critic.save(tmp / "critic")
        state = {"step": step, "data": self.data_state(), "total_steps": self.total_steps, "run_id": self.run_id}
        final = checkpoint.commit(tmp, step, state, keep=self.cfg.logging.keep_checkpoints)
        logger.info("saved checkpoint %s", final)

    def data_state(self) -> dict:
        """The data position a checkpoint records: after the last batch trained on."""
        return self.data.state_dict()

    def restore(self, ckpt) -> None:
        state = checkpoint.load_state(ckpt)
        self.policy.load(ckpt / "policy")
        if self.critic is not None:
            self.critic.load(ckpt / "critic")
        self.data.load_state_dict(state["data"])
        self.step_num = int(state["step"])
        self.run_id = state.get("run_id")


def step_seed(seed: int, step: int, round_: int = 1) -> int:
    """The sampling seed of one generation round: a pure function, so a resumed run samples identically."""
    return (seed * 1_000_003 + step * 7919 + round_) % (2**31 - 1)
