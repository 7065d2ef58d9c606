"""The trainer's in-loop eval grades through the run's own reward service, with the run's token and scheme
(regressions: it sent no token, so a protected service answered 401; it always graded with ``simplerl``'s
extraction rules, so a ``correctness`` run's eval missed the last-number answers its reward counted)."""
from __future__ import annotations

import json

import pytest

from mathrl_core.rollout.base import RolloutBackend, RolloutOutput
from trainer.build import build_eval_fn
from trainer.config import EvalConfig, RewardConfig, RLConfig
from trainer.reward import RewardScorer

pytestmark = pytest.mark.slow


class ScriptedRollout(RolloutBackend):
    """Answers every prompt with a fixed text (the policy's text is what this test controls, not the model)."""

    shares_policy = True

    def __init__(self, text: str):
        self.text = text

    def generate(self, prompts, sampling, seeds=None, progress=False):
        rows = len(prompts) * sampling.n
        return RolloutOutput([[1]] * rows, [[5, 6, 7]] * rows, [[0.0] * 3] * rows, [self.text] * rows,
                             ["stop"] * rows, [i for i in range(len(prompts)) for _ in range(sampling.n)])

    def update_weights(self, state_dict):
        pass


@pytest.fixture
def heldout(tmp_path):
    path = tmp_path / "heldout.jsonl"
    path.write_text(json.dumps({"question": "Tom has 40 apples and buys 2. How many now?", "answer": "42"}) + "\n")
    return path


def _eval(cfg: RLConfig, tokenizer, rollout, out_dir, reward_cfg: RewardConfig) -> dict:
    reward = RewardScorer(reward_cfg)
    try:
        return build_eval_fn(cfg, tokenizer, rollout, out_dir, reward)(1)
    finally:
        reward.close()


def test_eval_hook_sends_the_token_of_a_protected_service(tiny_tokenizer, heldout, tmp_path):
    cfg = RLConfig(eval=EvalConfig(every_steps=1, data=str(heldout), temperature=0.0, max_new_tokens=8))
    m = _eval(cfg, tiny_tokenizer, ScriptedRollout("so the answer is \\boxed{42}"), tmp_path,
              RewardConfig(token="s3cret-token", workers=1))
    assert m["eval/heldout/pass@1"] == 1.0


@pytest.mark.parametrize("scheme, accuracy, no_answer", [("correctness", 1.0, 0.0), ("simplerl", 0.0, 1.0)])
def test_eval_hook_grades_with_the_runs_scheme(tiny_tokenizer, heldout, tmp_path, scheme, accuracy, no_answer):
    """No box, no answer phrase: only a scheme with the last-number fallback (correctness) reads the 42."""
    cfg = RLConfig(reward=RewardConfig(scheme=scheme),
                   eval=EvalConfig(every_steps=1, data=str(heldout), temperature=0.0, max_new_tokens=8))
    m = _eval(cfg, tiny_tokenizer, ScriptedRollout("Tom had 40 apples and bought 2 more. Adding them up gives 42 apples in all"), tmp_path,
              RewardConfig(scheme=scheme, workers=1))
    assert (m["eval/heldout/pass@1"], m["eval/heldout/no_answer_rate"]) == (accuracy, no_answer)
