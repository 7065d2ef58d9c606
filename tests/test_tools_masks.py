"""Tool output inside a response is not the policy's action: the masks that keep it out of the policy loss, the KL,
the entropy and the rollout/trainer mismatch metric, checked on the trainer's real code paths with a tiny model."""
from __future__ import annotations

import copy

import pytest
import torch

from mathrl_core.rollout.base import RolloutOutput
from mathrl_core.rollout.hf import HFRollout
from trainer.config import RLConfig
from trainer.config_tree import load_config
from trainer.experience import Experience, ScoredRollout
from trainer.rl_loop import PhaseTimer, RLLoop
from trainer.roles import Placement, build_worker
from trainer.workers.common import trimmed

pytestmark = pytest.mark.usefixtures("single_thread")

# response: 3 model tokens, 2 observation tokens, 2 model tokens (row 0); row 1 without tool use
RESPONSES = [[11, 12, 13, 21, 22, 14, 15], [16, 17, 18]]
MASKS = [[1, 1, 1, 0, 0, 1, 1], [1, 1, 1]]
OBS = (0, [3, 4])


def _cfg(model_dir, tmp_path, extra=()):
    return load_config(RLConfig, None, [
        f"model.pretrain={model_dir}", "model.dtype=float32", f"logging.output_dir={tmp_path}", "rollout.n=2",
        "rollout.prompts_per_step=1", "train.minibatch_size=2", "train.micro_batch_size=2", "train.actor_lr=1e-2",
        "train.ppo_epochs=1", "algorithm.kl_coef=0.1", "algorithm.kl_mode=loss", "algorithm.kl_estimator=k3",
        "algorithm.entropy_coef=0.05", "algorithm.loss_agg=token_mean", *extra])


def _loop(cfg, model_dir, tokenizer):
    here = Placement.local("cpu")
    policy = build_worker(cfg, "policy", here, model_path=str(model_dir), total_updates=1)
    ref = build_worker(cfg, "reference", here, model_path=str(model_dir), policy=policy)
    rollout = HFRollout(policy.model, tokenizer, shares_policy=True)
    return RLLoop(cfg, tokenizer=tokenizer, data=None, rollout=rollout, reward=None, policy=policy, ref=ref,
                  total_steps=1)


def _scored(rollout_logprobs, masks=MASKS):
    out = RolloutOutput([[5, 6, 7]] * 2, RESPONSES, rollout_logprobs, ["a", "b"], ["stop"] * 2, [0, 0],
                        loss_mask=masks, infos=[{"tool_calls": 1}, {}])
    return ScoredRollout(out, ["1", "1"], [1.0, -0.5], ["correct", "wrong"])


def test_trimmed_keeps_tokens_after_a_masked_observation():
    mask = torch.tensor([[1., 1., 0., 0., 1.], [1., 0., 0., 0., 0.]])
    ids = torch.arange(2 * 7).view(2, 7)
    attn = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0, 0]])
    exp = Experience(ids, attn, mask, 2, torch.zeros(2), torch.zeros(2, dtype=torch.bool))
    t = trimmed(exp)
    assert t.response_mask.shape[1] == 5 and torch.equal(t.input_ids, ids)  # the last model token survives


def test_experience_mask_and_mismatch_skip_observation_tokens(tiny_model_dir, tiny_tokenizer, tmp_path):
    loop = _loop(_cfg(tiny_model_dir, tmp_path), tiny_model_dir, tiny_tokenizer)
    # rollout log-probs: the policy's own on model tokens (what a backend reports), 0 on observation tokens
    probe = loop.make_experience(_scored([[0.0] * 7, [0.0] * 3]), PhaseTimer())
    own = probe.old_logprobs
    lps = [[float(own[0, t]) if MASKS[0][t] else 0.0 for t in range(7)], own[1, :3].tolist()]
    exp = loop.make_experience(_scored(lps), PhaseTimer())
    assert exp.response_mask.tolist() == [[1., 1., 1., 0., 0., 1., 1.], [1., 1., 1., 0., 0., 0., 0.]]
    assert (exp.advantages[OBS[0], OBS[1]] == 0).all()
    m = loop.experience_metrics(exp, _scored(lps).out)
    assert m["rollout/logprob_max_abs_diff"] < 1e-5  # the observation tokens' 0s are not a mismatch


def _fit(loop, exp):
    loop.policy.fit(exp, step=1)
    return {k: v.detach().clone() for k, v in loop.policy.model.named_parameters()}


def test_loss_kl_and_entropy_ignore_observation_tokens(tiny_model_dir, tiny_tokenizer, tmp_path):
    """The update is the same whatever sits at masked positions (advantages, old and reference log-probs), and
    differs when an unmasked position changes (so the test can fail)."""
    loop = _loop(_cfg(tiny_model_dir, tmp_path), tiny_model_dir, tiny_tokenizer)
    exp = loop.make_experience(_scored([[0.0] * 7, [0.0] * 3]), PhaseTimer())
    start = copy.deepcopy(loop.policy.model.state_dict())
    opt_start = copy.deepcopy(loop.policy.trainable.optimizer.state_dict())

    def fit_with(change_at):
        loop.policy.model.load_state_dict(start)
        loop.policy.trainable.optimizer.load_state_dict(opt_start)
        e = copy.deepcopy(exp)
        row, cols = change_at
        for name in ("advantages", "old_logprobs", "ref_logprobs"):
            getattr(e, name)[row, cols] += 3.0
        return _fit(loop, e)

    base = fit_with((0, []))
    masked = fit_with(OBS)
    unmasked = fit_with((0, [5]))
    assert all(torch.equal(base[k], masked[k]) for k in base)
    assert any(not torch.equal(base[k], unmasked[k]) for k in base)
