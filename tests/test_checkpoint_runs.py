"""Checkpoints of one run cannot be confused with another run's in the same output directory: pruning removes
only the writing run's older checkpoints, ``latest`` always names the one just written, and the CLIs refuse a
new run in a directory that holds one (``--resume`` continues it)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer import checkpoint

REPO = Path(__file__).resolve().parents[1]


def _save(out, step, run_id, keep=2):
    tmp = checkpoint.begin(out, step)
    (tmp / "payload").write_text(f"{run_id}:{step}")
    return checkpoint.commit(tmp, step, {"step": step, "run_id": run_id}, keep=keep)


def _names(out):
    return sorted(p.name for p in checkpoint.checkpoints_dir(out).glob("step_*"))


def test_a_new_run_keeps_its_checkpoints_beside_an_earlier_longer_run(tmp_path):
    """The red team's case: an earlier run reached step 8; a new run in the same directory saves steps 2, 4, 6.
    Every checkpoint the new run writes survives its own save, ``latest`` names it, and the earlier run's
    are not touched (except step 6, which the new run's step 6 replaces)."""
    for step in (2, 4, 6, 8):
        _save(tmp_path, step, "run-a")
    assert _names(tmp_path) == ["step_000006", "step_000008"]
    for step in (2, 4, 6):
        final = _save(tmp_path, step, "run-b")
        assert final.is_dir() and (final / "payload").read_text() == f"run-b:{step}"
        assert checkpoint.latest(tmp_path) == final
    # run-b keeps its newest two (4, 6); run-a's step 8 is left alone
    assert _names(tmp_path) == ["step_000004", "step_000006", "step_000008"]
    payloads = {p.name: (p / "payload").read_text() for p in checkpoint.checkpoints_dir(tmp_path).glob("step_*")}
    assert payloads == {"step_000004": "run-b:4", "step_000006": "run-b:6", "step_000008": "run-a:8"}


def test_pruning_follows_the_run_across_a_resume_and_keep_one(tmp_path):
    for step in (1, 2):
        _save(tmp_path, step, "run-a")
    state = checkpoint.load_state(checkpoint.latest(tmp_path))
    assert state["run_id"] == "run-a"  # a resumed run continues with this id and prunes its own older ones
    _save(tmp_path, 3, state["run_id"])
    assert _names(tmp_path) == ["step_000002", "step_000003"]
    _save(tmp_path, 4, "run-a", keep=1)
    assert _names(tmp_path) == ["step_000004"]
    _save(tmp_path, 5, "run-a", keep=0)  # keep <= 0 keeps all
    assert _names(tmp_path) == ["step_000004", "step_000005"]


def test_unreadable_step_directories_are_never_pruned(tmp_path):
    stray = checkpoint.checkpoints_dir(tmp_path) / "step_000001"
    stray.mkdir(parents=True)  # e.g. copied in by hand, no trainer_state.json
    for step in (2, 3, 4):
        _save(tmp_path, step, "run-a")
    assert _names(tmp_path) == ["step_000001", "step_000003", "step_000004"]


def test_check_new_run_refuses_a_used_directory_unless_resuming(tmp_path):
    checkpoint.check_new_run(tmp_path / "missing", resume=False)
    checkpoint.check_new_run(tmp_path, resume=False)  # empty
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(checkpoint.OutputDirInUse, match="metrics.jsonl"):
        checkpoint.check_new_run(tmp_path, resume=False)
    _save(tmp_path / "run", 4, "run-a")
    with pytest.raises(checkpoint.OutputDirInUse,
                       match=r"1 checkpoint\(s\), the newest step_000004, run run-a.*--resume.*logging.output_dir"):
        checkpoint.check_new_run(tmp_path / "run", resume=False)
    checkpoint.check_new_run(tmp_path / "run", resume=True)


def test_run_ids_are_distinct():
    ids = {checkpoint.new_run_id() for _ in range(50)}
    assert len(ids) == 50


def test_rl_train_refuses_a_used_output_dir_before_touching_it(tmp_path, capsys):
    """``rl-train`` (no --resume) in a directory holding a run: exit 2 with the way out, nothing overwritten."""
    from trainer import cli

    out = tmp_path / "run"
    _save(out, 8, "run-a")
    (out / "config.yaml").write_text("earlier: run\n")
    code = cli.main(["--config", str(REPO / "recipes/tiny_cpu_grpo.yaml"), f"logging.output_dir={out}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "step_000008" in err and "--resume" in err
    assert (out / "config.yaml").read_text() == "earlier: run\n"
    assert json.loads((checkpoint.latest(out) / checkpoint.STATE_FILE).read_text())["run_id"] == "run-a"
