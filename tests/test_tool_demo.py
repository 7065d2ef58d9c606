"""The CPU tool demo's data (answers right, splits disjoint, deterministic, the teacher's mix) and a smoke run of
``python -m trainer.tool_demo`` with tiny settings (every stage once: SFT, evals with and without the executor,
GRPO with and without it, the table)."""
from __future__ import annotations

import contextlib
import io
import json
import random

import pytest

from trainer.data.tool_tasks import ToolTaskConfig, generate_tasks, make_task
from trainer.tool_demo import write_data


def test_tasks_are_right_and_splits_disjoint():
    train, test = generate_tasks(300, "train", seed=1), generate_tasks(100, "test", seed=1)
    assert not {t.question for t in train} & {t.question for t in test}
    assert [t.question for t in generate_tasks(50, "train", seed=1)] == [t.question for t in train[:50]]
    for t in train + test:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(t.code, {})  # the solution's own code (trusted here): it prints the gold answer
        assert out.getvalue() == t.answer + "\n"
        a, op, b = t.expression.split()
        assert str(int(a) * int(b) if op == "*" else int(a) // int(b)) == t.answer and (op == "*" or int(a) % int(b) == 0)
        assert f"```output\n{t.answer}\n```" in t.tool_solution() and t.tool_solution().endswith(f"\\boxed{{{t.answer}}}.")
        assert f"{t.expression} = {t.answer}." in t.direct_solution()
    with pytest.raises(ValueError, match="ops"):
        ToolTaskConfig(ops=("pow",))
    assert make_task(random.Random(0), ToolTaskConfig(ops=("mul",))).expression.count("*") == 1


def test_the_teachers_mix(tmp_path):
    paths = write_data(tmp_path, seed=0, n_sft=400, n_rl=50, n_heldout=20, tool_fraction=0.3)
    sft = [json.loads(line) for line in paths["sft"].read_text().splitlines()]
    tool = sum("```python" in r["response"] for r in sft) / len(sft)
    assert len(sft) == 400 and 0.22 < tool < 0.38
    rl = [json.loads(line)["question"] for line in paths["rl_prompts"].read_text().splitlines()]
    assert not set(rl) & {r["question"] for r in sft}


@pytest.mark.slow
def test_tool_demo_smoke(tmp_path):
    from trainer.tool_demo import main

    out = tmp_path / "demo"
    assert main(["--seeds", "0", "--output-dir", str(out), "--sft-demos", "64", "--rl-prompts", "16",
                 "--heldout", "8", "--jobs", "1", "--sft", "train.max_steps=2", "--rl", "train.total_steps=1",
                 "--rl", "rollout.prompts_per_step=2", "--rl", "rollout.n=4", "--rl", "train.minibatch_size=8",
                 "--rl", "train.micro_batch_size=8"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    row = summary["rows"][0]
    assert row["sft"]["sft_steps"] == 2 and row["tool"]["grpo_steps"] == 1 and row["no_tool"]["grpo_steps"] == 1
    assert set(row["sft"]["before"]) == {"tool", "no_tool"} and "after_tool_off" in row["tool"]
    assert "| 0 |" in summary["table"] and (out / "table.md").is_file()
