"""The TRL adapter inside a real TRL 1.16 GRPOTrainer run (tiny local Qwen2 model, real reward service)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_grpo_trainer_scores_through_the_service(tmp_path):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    from reward_service.adapters import TRLReward
    from reward_service.client import RewardClient, start_service
    from trainer.models.tiny import build_model, train_tokenizer

    corpus = ["What is 1+1? The answer is \\boxed{2}.", "What is 2+3? The answer is \\boxed{5}."] * 20
    tok = train_tokenizer(corpus + [" ".join(str(i) for i in range(100))], vocab_size=300)
    model = build_model(tok, hidden_size=32, num_layers=1)
    ds = Dataset.from_dict({"prompt": ["What is 1+1?", "What is 2+3?"] * 2, "answer": ["2", "5"] * 2})

    class Recording(TRLReward):
        def __call__(self, prompts=(), completions=(), **kwargs):
            rewards = super().__call__(prompts=prompts, completions=completions, **kwargs)
            self.calls.append((list(completions), list(kwargs["answer"]), rewards, sorted(kwargs)))
            return rewards

    with start_service(workers=1, args=["--log-level", "warning"]) as svc:
        reward = Recording(svc.url, scheme="simplerl")
        reward.calls = []
        args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4,
                              max_completion_length=8, max_steps=2, report_to=[], use_cpu=True, logging_steps=1,
                              save_strategy="no", beta=0.0, disable_tqdm=True, seed=0)
        trainer = trl.GRPOTrainer(model=model, processing_class=tok, reward_funcs=[reward], train_dataset=ds,
                                  args=args)
        trainer.train()
        assert len(reward.calls) == 2  # one call per step, with the whole generation batch
        completions, answers, rewards, kwarg_names = reward.calls[0]
        assert len(completions) == len(answers) == len(rewards) == 4
        assert {"completion_ids", "trainer_state", "log_metric", "answer"} <= set(kwarg_names)
        with RewardClient(svc.url) as c:  # what TRL trained on is exactly what the service says
            assert rewards == c.rewards(completions, answers, scheme="simplerl")
    logs = trainer.state.log_history
    assert "rewards/math_reward_simplerl/mean" in logs[0] and "math_reward_simplerl/accuracy" in logs[0]
    mean = sum(r for call in reward.calls[:1] for r in call[2]) / 4
    assert logs[0]["rewards/math_reward_simplerl/mean"] == pytest.approx(mean)
