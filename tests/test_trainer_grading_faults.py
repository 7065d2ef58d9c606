"""A grading timeout is an infrastructure fault, not a worse policy: the trainer counts it
(``reward/timeout_rate``) and, with ``reward.exclude_timeouts``, leaves the sample out of the loss with a neutral
reward instead of its scheme's wrong reward. Real reward service (its scripted test grader hangs on ``HANG``), real
tiny policy, a rollout backend that answers with fixed texts."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mathrl_core.rollout.base import RolloutBackend, RolloutOutput
from mathrl_core.rollout.registry import ROLLOUT_BACKENDS, register_rollout_backend
from reward_service.client import start_service
from trainer.build import build_run
from trainer.config import RLConfig
from trainer.config_tree import load_config
from trainer.rl_loop import PhaseTimer

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]
TEXTS = ["so \\boxed{7}", "HANG \\boxed{7}", "so \\boxed{7}", "so \\boxed{8}"]


class FixedTexts(RolloutBackend):
    def generate(self, prompts, sampling, seeds=None, progress=False):
        rows = len(prompts) * sampling.n
        texts = (TEXTS * rows)[:rows]
        return RolloutOutput([[3, 4]] * rows, [[5, 6, 7]] * rows, [[-1.0] * 3] * rows, texts, ["stop"] * rows,
                             [i for i in range(len(prompts)) for _ in range(sampling.n)])

    def update_weights(self, state_dict):
        pass


@pytest.fixture(scope="module")
def hanging_service():
    register_rollout_backend("fixed_texts_test", lambda spec, src: FixedTexts(), remote_capable=False)
    svc = start_service(workers=2, timeout=0.5, args=["--grader", "tests.reward_service_fakes:scripted_grade"],
                        env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    yield svc.url
    svc.stop()
    ROLLOUT_BACKENDS.pop("fixed_texts_test")


@pytest.mark.parametrize("exclude", [False, True])
def test_grading_timeouts_are_counted_and_optionally_left_out(tiny_model_dir, tmp_path, hanging_service, exclude):
    cfg = load_config(RLConfig, REPO / "recipes/tiny_cpu_grpo.yaml", [
        f"model.pretrain={tiny_model_dir}", "model.tiny=null", f"logging.output_dir={tmp_path}",
        f"reward.url={hanging_service}", f"reward.exclude_timeouts={str(exclude).lower()}",
        "rollout.backend=fixed_texts_test", "rollout.prompts_per_step=1", "rollout.n=4", "train.minibatch_size=4",
        "train.micro_batch_size=4", "data.synthetic.n=8", "logging.progress_bar=false", "logging.tensorboard=false"])
    loop = build_run(cfg)
    try:
        scored, stats = loop.collect(1, PhaseTimer())
        assert scored.timed_out == [False, True, False, False]
        assert stats["reward/timeout_rate"] == 0.25 and stats["reward/retry_rate"] >= 0.25  # retried once first
        exp = loop.make_experience(scored, PhaseTimer())
    finally:
        loop.reward.close()
        loop.tracker.close()
    if exclude:  # the timed-out sample: no loss, and the group mean of the others' rewards
        assert exp.response_mask[1].sum() == 0 and exp.response_mask[[0, 2, 3]].sum() == 9
        assert exp.rewards[1] == pytest.approx(sum(scored.rewards[j] for j in (0, 2, 3)) / 3)
    else:  # penalised like a wrong answer (the scheme's reward for "wrong")
        assert scored.verdicts[1] == "wrong" and exp.response_mask.sum() == 12
        assert exp.rewards[1] == scored.rewards[1] == -0.5
    assert torch.isfinite(exp.advantages).all()
