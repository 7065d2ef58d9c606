"""Typed contracts between the loop and its workers: the scored rollout, the old-log-prob source, the declared
reduction of every worker metric, and the typed ``model.tiny`` / ``data.synthetic`` sections."""
from __future__ import annotations

import pytest
import torch

from mathrl_core.rollout.base import RolloutOutput
from trainer.config import RLConfig
from trainer.config_tree import ConfigError, load_config
from trainer.experience import Experience, ScoredRollout
from trainer.worker_metrics import StatsAccumulator, combine_ranks


def _out(n: int) -> RolloutOutput:
    return RolloutOutput([[1]] * n, [[2, 3]] * n, [[0.0, 0.0]] * n, [f"t{i}" for i in range(n)], ["stop"] * n,
                         [i // 2 for i in range(n)])


def test_scored_rollout_rows_stay_together():
    s = ScoredRollout(_out(4), ["a", "a", "b", "b"], [1.0, 0.0, -0.5, 1.0], ["correct", "wrong", "wrong", "correct"])
    part = ScoredRollout.concat([s.select([2, 3]), s.select([0])])
    assert part.out.texts == ["t2", "t3", "t0"] and part.golds == ["b", "b", "a"]
    assert part.rewards == [-0.5, 1.0, 1.0] and part.verdicts == ["wrong", "correct", "correct"]
    with pytest.raises(ValueError, match="rewards has 3 rows, expected 4"):
        ScoredRollout(_out(4), ["a"] * 4, [0.0] * 3, ["wrong"] * 4)


def test_old_logprobs_come_from_the_update_only_when_marked():
    z = torch.zeros(2, 3)
    exp = Experience(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long), z, 1,
                     torch.zeros(2), torch.zeros(2, dtype=torch.bool))
    lp = torch.randn(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="without old log-probs"):
        exp.old_logprobs_for(lp)
    marked = exp.select([1, 0])
    marked.old_logprobs_from_update = True
    assert torch.equal(marked.split(1)[0].old_logprobs_for(lp), lp.detach())  # the flag survives split/select
    exp.old_logprobs = z + 1
    assert torch.equal(exp.old_logprobs_for(lp), z + 1)


def test_every_worker_metric_has_a_declared_reduction():
    acc = StatsAccumulator()
    acc.add("policy/pg_loss", 1.0, weight=3.0)
    acc.add("policy/pg_loss", 2.0, weight=1.0)
    acc.add("policy/early_stopped_microbatches", 1.0)
    acc.add("policy/early_stopped_microbatches", 1.0)
    acc.add("policy/ratio_max", 1.5)
    acc.add("policy/ratio_max", 1.2)
    acc.add("policy/lr", 1e-6)
    assert acc.means() == {"policy/pg_loss": 1.25, "policy/early_stopped_microbatches": 2.0,
                           "policy/ratio_max": 1.5, "policy/lr": 1e-6}
    with pytest.raises(KeyError, match="no declared reduction"):
        acc.add("policy/new_counter", 1.0)
    ranks = [{"policy/pg_loss": 1.0, "policy/early_stopped_microbatches": 2.0, "policy/ratio_min": 0.9,
              "policy/lr": 1e-6}, {"policy/pg_loss": 3.0, "policy/early_stopped_microbatches": 1.0,
                                   "policy/ratio_min": 0.7, "policy/lr": 1e-6}]
    assert combine_ranks(ranks) == {"policy/pg_loss": 2.0, "policy/early_stopped_microbatches": 3.0,
                                    "policy/ratio_min": 0.7, "policy/lr": 1e-6}


def test_tiny_and_synthetic_are_typed_sections():
    cfg = load_config(RLConfig, None, ["model.tiny.hidden_size=32", "data.synthetic.max_ops=2",
                                       "data.synthetic.start_range=[2, 9]", "data.train=synthetic"])
    assert cfg.model.tiny.hidden_size == 32 and cfg.model.tiny.num_layers == 2
    assert cfg.data.synthetic.max_ops == 2 and cfg.data.synthetic.start_range == (2, 9)
    with pytest.raises(ConfigError, match="model.tiny.hidden_sizes"):
        load_config(RLConfig, None, ["model.tiny.hidden_sizes=32"])
    with pytest.raises(ConfigError, match="data.synthetic.n"):
        load_config(RLConfig, None, ["data.synthetic.n=many"])
    with pytest.raises(ConfigError, match="min_ops <= max_ops"):
        load_config(RLConfig, None, ["data.synthetic.max_ops=0"])
