"""The CPU quickstart pipeline end to end in a reduced configuration (tiny model, a few SFT and GRPO steps):
every stage runs through the real code (local tokenizer + model, SFT, RLLoop with the HTTP reward service,
the same-time SFT control in a child process, the eval harness), and the summary, table and plot agree with
each other and with the files the stages wrote. Not the >= 10-point gain: that needs the full run
(``python -m trainer.quickstart``, see its docstring and the report)."""
from __future__ import annotations

import json

import pytest

from trainer import quickstart

pytestmark = pytest.mark.usefixtures("single_thread")

SFT = ["model.tiny.hidden_size=64", "model.tiny.num_layers=1", "data.synthetic.n=256", "data.eval_limit=16",
       "train.max_steps=24", "train.batch_size=16", "train.micro_batch_size=16", "eval.every_steps=12",
       "logging.progress_bar=false"]
RL = ["rollout.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=24", "train.minibatch_size=8",
      "train.micro_batch_size=8", "train.total_steps=4", "eval.every_steps=2", "eval.max_new_tokens=24",
      "logging.progress_bar=false"]


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    s = quickstart.run(out, seed=3, sft_overrides=SFT, rl_overrides=RL, n_heldout=12, n_rl_prompts=40,
                       control_eval_every_s=0.5)
    return out, s


def test_files_and_summary(summary):
    out, s = summary
    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("sft_accuracy", "rl_accuracy", "control_accuracy", "rl_gain_points", "sft", "rl", "control",
                "rl_curve", "rl_eval_curve", "control_curve", "stages", "total", "table"):
        assert key in on_disk, key
    png = (out / "reward_accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    table = (out / "table.md").read_text()
    for row in ("after SFT", "after GRPO", "SFT control"):
        assert row in table
    assert f"{100 * s['sft_accuracy']:7.1f}%" in table and f"{100 * s['rl_accuracy']:7.1f}%" in table


def test_numbers_are_consistent(summary):
    out, s = summary
    for name in ("sft", "rl", "control"):
        r = s[name]
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["no_answer_rate"] <= 1.0
        assert 0 < r["mean_length"] <= 24
        # held-out accuracy is a multiple of 1/12 (12 problems, one greedy sample each)
        assert abs(r["accuracy"] * 12 - round(r["accuracy"] * 12)) < 1e-9
    assert s["sft_accuracy"] == s["sft"]["accuracy"] and s["rl_accuracy"] == s["rl"]["accuracy"]
    assert s["rl_gain_points"] == pytest.approx(100 * (s["rl_accuracy"] - s["sft_accuracy"]), abs=0.01)
    # the eval harness wrote the same numbers it returned
    for stage, acc in (("sft", s["sft_accuracy"]), ("grpo", s["rl_accuracy"])):
        written = json.loads((out / "eval" / stage / "summary.json").read_text())
        assert written["benchmarks"]["heldout"]["pass@1"] == pytest.approx(acc)
    # the RL loop's own eval hook at its last step evaluated the same final policy the same way
    assert s["rl_eval_hook_final_accuracy"] == pytest.approx(s["rl_accuracy"])
    assert [p["step"] for p in s["rl_eval_curve"]] == [2, 4]
    # the loop's metrics file holds one line per GRPO step, with the rewards the curve shows
    lines = [json.loads(x) for x in (out / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4] == [p["step"] for p in s["rl_curve"]]
    assert [x["reward/mean"] for x in lines] == [p["reward"] for p in s["rl_curve"]]
    # the control really trained, for about as long as GRPO ran, and stopped on the signal
    assert s["control_steps"] >= 1 and s["control_train_s"] > 0
    info = json.loads((out / "control" / "model" / "sft_info.json").read_text())
    assert info["stop_reason"] == "signal" and info["step"] == 24 + s["control_steps"]
    assert s["sft_data"]["examples"] == 256 and 0.3 < s["sft_data"]["correct_and_boxed_fraction"] < 0.7
    assert s["total"]["wall_s"] >= sum(v["wall_s"] for k, v in s["stages"].items() if k != "eval_grpo") - 1


def test_async_grpo_stage_beside_the_synchronous_one(summary):
    """--reuse-sft --async-grpo 1: the GRPO stage again, asynchronously, into its own _async files; the
    synchronous run's files stay as they were."""
    out, s = summary
    before = {p: (out / p).read_bytes() for p in ("summary.json", "table.md", "grpo/metrics.jsonl")}
    a = quickstart.run(out, seed=3, sft_overrides=SFT, rl_overrides=RL, n_heldout=12, n_rl_prompts=40,
                       control_eval_every_s=0.5, reuse_sft=True, async_grpo=1)
    assert {p: (out / p).read_bytes() for p in before} == before
    assert a["grpo_max_staleness"] == 1 and a["sft_accuracy"] == s["sft_accuracy"] and a["rl_steps"] == 4
    assert json.loads((out / "summary_async.json").read_text())["rl_accuracy"] == a["rl_accuracy"]
    assert "asynchronous (max_staleness 1)" in (out / "table_async.md").read_text()
    rows = [json.loads(x) for x in (out / "grpo_async" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["async/staleness_max"] <= 1 for r in rows)
    assert (out / "control_async" / "result.json").is_file()


def test_reuse_sft_runs_only_grpo_and_control(summary):
    """--reuse-sft starts from the finished SFT stage of the same config (runs last: it rewrites the run)."""
    out, s = summary
    sft_metrics = (out / "sft" / "metrics.jsonl").read_text()
    rl = [x for x in RL if not x.startswith("train.total_steps")] + ["train.total_steps=2"]
    again = quickstart.run(out, seed=3, sft_overrides=SFT, rl_overrides=rl, n_heldout=12, n_rl_prompts=40,
                           control_eval_every_s=0.5, reuse_sft=True)
    assert (out / "sft" / "metrics.jsonl").read_text() == sft_metrics  # no SFT step was taken
    assert again["sft_accuracy"] == s["sft_accuracy"] and again["rl_steps"] == 2
