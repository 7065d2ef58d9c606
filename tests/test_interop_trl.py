"""TRL against the reward service: a real TRL GRPOTrainer (the dev extras' release) trains a saved tiny Qwen2
checkpoint on a conversational data set, with TRLReward scoring every generation batch through a live service.
(tests/test_client_trl.py does the same with plain-text prompts.)"""
from __future__ import annotations

import importlib.metadata

import pytest

pytestmark = pytest.mark.slow


def test_grpo_trainer_conversational_prompts_through_the_service(tmp_path, tiny_model_dir):
    import trl
    from datasets import Dataset

    from reward_service.adapters import TRLReward
    from reward_service.client import RewardClient, start_service

    assert importlib.metadata.version("trl").startswith("1.16.")  # the release README's compatibility table names
    chats = [[{"role": "system", "content": "Put the answer in \\boxed{}."}, {"role": "user", "content": q}]
             for q in ("What is 1+1?", "What is 2+3?")]
    ds = Dataset.from_dict({"prompt": chats * 2, "solution": ["2", "5"] * 2})

    class Recording(TRLReward):
        def __call__(self, prompts=(), completions=(), **kwargs):
            rewards = super().__call__(prompts=prompts, completions=completions, **kwargs)
            self.calls.append((list(completions), list(kwargs["solution"]), rewards))
            return rewards

    with start_service(workers=1, args=["--log-level", "warning"]) as svc:
        reward = Recording(svc.url, scheme="simplerl")  # the gold column is found by name ("solution")
        reward.calls = []
        args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                              max_completion_length=8, max_steps=2, report_to=[], use_cpu=True, logging_steps=1,
                              save_strategy="no", beta=0.0, disable_tqdm=True, seed=0)
        trainer = trl.GRPOTrainer(model=str(tiny_model_dir), reward_funcs=[reward], train_dataset=ds, args=args)
        trainer.train()
        assert len(reward.calls) == 2
        for completions, golds, rewards in reward.calls:
            # conversational data: TRL hands over each completion as a list of assistant messages
            assert all(isinstance(c, list) and c[0]["role"] == "assistant" for c in completions)
            texts = [c[0]["content"] for c in completions]  # what must be graded: the assistant's text
            with RewardClient(svc.url) as c:
                assert rewards == c.rewards(texts, golds, scheme="simplerl")
    logs = trainer.state.log_history
    assert "rewards/math_reward_simplerl/mean" in logs[0] and "math_reward_simplerl/no_answer" in logs[0]
    assert logs[0]["rewards/math_reward_simplerl/mean"] == pytest.approx(sum(reward.calls[0][2]) / 4)
