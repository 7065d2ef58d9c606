"""Experience padding/splitting, atomic checkpoints, metrics file, LR schedules (hand-computed values)."""
import json
import math

import pytest
import torch

from trainer import checkpoint
from trainer.experience import Experience
from mathrl_core.models.sequences import pad_sequences
from trainer.schedules import cosine_with_warmup, lr_lambda
from trainer.tracking import Tracker, read_metrics


def _batch(prompts, responses):
    b = pad_sequences(prompts, responses, pad_token_id=0)
    return b.input_ids, b.attention_mask, b.response_mask.float(), b.prompt_len


def test_pad_sequences_layout():
    ids, att, rmask, P = _batch([[5, 6], [7]], [[1, 2, 3], [4]])
    assert P == 2
    assert ids.tolist() == [[5, 6, 1, 2, 3], [0, 7, 4, 0, 0]]
    assert att.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert rmask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_experience_select_shard_concat():
    ids, att, rmask, P = _batch([[1]] * 5, [[2, 3]] * 5)
    exp = Experience(ids, att, rmask, P, rewards=torch.arange(5.0), truncated=torch.zeros(5, dtype=torch.bool))
    shards = exp.shard(2)
    assert [s.batch_size for s in shards] == [2, 3] or [s.batch_size for s in shards] == [3, 2]
    back = Experience.concat(shards)
    assert torch.equal(back.rewards, exp.rewards) and torch.equal(back.input_ids, exp.input_ids)
    assert exp.select([4, 0]).rewards.tolist() == [4.0, 0.0]
    assert [s.batch_size for s in exp.split(2)] == [2, 2, 1]


def test_grouped_by_prompt_puts_a_group_in_adjacent_rows():
    from trainer.workers.policy import grouped_by_prompt

    prompts = [[7, 8], [9], [7, 8], [5, 6], [9], [7, 8]]  # prompt A, B, A, C, B, A (as after a shuffle)
    ids, att, rmask, P = _batch(prompts, [[i + 10] for i in range(6)])
    exp = Experience(ids, att, rmask, P, rewards=torch.arange(6.0), truncated=torch.zeros(6, dtype=torch.bool))
    grouped = grouped_by_prompt(exp)
    # A's rows (0, 2, 5), then B's (1, 4), then C's (3): first-appearance order, stable within a prompt
    assert grouped.rewards.tolist() == [0.0, 2.0, 5.0, 1.0, 4.0, 3.0]
    assert grouped.input_ids[:, P].tolist() == [10, 12, 15, 11, 14, 13]  # rows moved whole
    assert sorted(grouped.rewards.tolist()) == exp.rewards.tolist()


def test_cosine_schedule_hand_values():
    # W=2, S=10, r=0.1: warmup 1/2, 2/2; at s=6 progress 4/8 -> 0.1 + 0.9*0.5*(1+cos(pi/2)) = 0.55
    assert cosine_with_warmup(0, 10, 2, 0.1) == pytest.approx(0.5)
    assert cosine_with_warmup(2, 10, 2, 0.1) == pytest.approx(1.0)
    assert cosine_with_warmup(6, 10, 2, 0.1) == pytest.approx(0.55)
    assert cosine_with_warmup(10, 10, 2, 0.1) == pytest.approx(0.1)
    assert cosine_with_warmup(50, 10, 2, 0.1) == pytest.approx(0.1)
    f = lr_lambda("constant", 100, 0.03, 0.1)  # warmup ceil(3) steps
    assert [f(0), f(1), f(2), f(3)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    with pytest.raises(ValueError):
        lr_lambda("linear-ish", 10, 0, 0)


def test_checkpoint_atomic_and_latest(tmp_path):
    assert checkpoint.latest(tmp_path) is None
    for step in (1, 2, 3):
        tmp = checkpoint.begin(tmp_path, step)
        (tmp / "payload").write_text(str(step))
        checkpoint.commit(tmp, step, {"step": step}, keep=2)
    root = checkpoint.checkpoints_dir(tmp_path)
    assert sorted(p.name for p in root.glob("step_*")) == ["step_000002", "step_000003"]
    assert checkpoint.latest(tmp_path).name == "step_000003"
    # a crash mid-save leaves a temporary directory that `latest` ignores and the next save removes
    crashed = checkpoint.begin(tmp_path, 4)
    (crashed / "half").write_text("x")
    assert checkpoint.latest(tmp_path).name == "step_000003"
    checkpoint.begin(tmp_path, 4)
    assert not crashed.exists() or not (crashed / "half").exists()


def test_checkpoint_restores_rng(tmp_path):
    torch.manual_seed(7)
    tmp = checkpoint.begin(tmp_path, 1)
    checkpoint.commit(tmp, 1, {"step": 1})
    expected = torch.rand(3)
    torch.manual_seed(99)
    state = checkpoint.load_state(checkpoint.latest(tmp_path))
    assert state["step"] == 1 and torch.equal(torch.rand(3), expected)


def test_tracker_writes_and_truncates_on_resume(tmp_path):
    t = Tracker(tmp_path, 4, tensorboard=False, progress_bar=False)
    for s in (1, 2, 3):
        t.log(s, {"reward/mean": s * 0.5, "x": torch.tensor(1.0), "bad": math.nan})
    t.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[0]["reward/mean"] == 0.5 and rows[0]["bad"] is None
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 4, "cut')  # a line cut by a crash
    Tracker(tmp_path, 4, tensorboard=False, progress_bar=False, resume_step=2).close()
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
