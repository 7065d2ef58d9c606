"""95 % intervals and the paired before/after change (``rl-eval diff``), against hand-computed values."""
import json
import math

import pytest

from eval.cli import main
from eval.intervals import diff_report, mcnemar_exact_p, mean_interval, paired_change, per_problem, wilson


def test_wilson_against_hand_computed_values():
    w = wilson(5, 10)  # textbook: 0.5 [0.2366, 0.7634]
    assert w.value == 0.5 and w.low == pytest.approx(0.23659, abs=1e-5) and w.high == pytest.approx(0.76341, abs=1e-5)
    z = wilson(0, 200)  # no successes: [0, z^2/n / (1 + z^2/n)]
    z2n = 1.959963984540054 ** 2 / 200
    assert z.low == pytest.approx(0.0, abs=1e-15) and z.high == pytest.approx(z2n / (1 + z2n))
    assert wilson(200, 200).high == 1.0
    with pytest.raises(ValueError):
        wilson(0, 0)


def test_mean_interval_and_mcnemar():
    m = mean_interval([1.0, 2.0, 3.0, 4.0])  # mean 2.5, sd sqrt(5/3), half = 1.96 * sd / 2
    assert m.value == 2.5 and m.high - m.value == pytest.approx(1.959963984540054 * math.sqrt(5 / 3) / 2)
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(1, 4) == pytest.approx(2 * 6 / 32)
    assert mcnemar_exact_p(3, 3) == 1.0 and mcnemar_exact_p(0, 0) == 1.0


def _samples(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"benchmark": "b", "id": i, "sample": 0, "verdict": v, "len": n}) + "\n"
                            for i, (v, n) in enumerate(rows)))
    return path


def test_paired_change_counts_flips_on_the_same_problems(tmp_path):
    before = per_problem(_samples(tmp_path / "a" / "samples.jsonl",
                                  [("correct", 10), ("wrong", 20), ("no_answer", 30), ("no_answer", 40)]))
    after = per_problem(_samples(tmp_path / "b" / "samples.jsonl",
                                 [("correct", 10), ("correct", 12), ("correct", 14), ("wrong", 16)]))
    ch = paired_change(before, after)
    assert ch["problems"] == 4 and ch["flips"] == {"right_to_wrong": 0, "wrong_to_right": 2, "mcnemar_p": 0.5}
    assert ch["accuracy"].value == pytest.approx(0.5)           # (0 + 1 + 1 + 0) / 4
    assert ch["no_answer_rate"].value == pytest.approx(-0.5)    # (0 + 0 - 1 - 1) / 4
    assert ch["mean_length"].value == pytest.approx(-12.0)      # (0 - 8 - 16 - 24) / 4
    report = diff_report(tmp_path / "a", tmp_path / "b")
    assert report["runs"]["before"]["accuracy"].value == 0.25 and report["runs"]["after"]["accuracy"].value == 0.75
    with pytest.raises(ValueError, match="share 0 problems"):
        paired_change(before, {("other", "x"): before[("b", "0")]})


def test_diff_cli(tmp_path, capsys):
    _samples(tmp_path / "a" / "samples.jsonl", [("wrong", 5)] * 3 + [("correct", 5)])
    _samples(tmp_path / "b" / "samples.jsonl", [("correct", 7)] * 4)
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b"), "--names", "base,rl",
                 "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    assert "| metric (95 % CI) | base | rl | change (paired) |" in out and "wrong->right 3" in out
    assert json.loads((tmp_path / "d.json").read_text())["change"]["accuracy"]["value"] == pytest.approx(0.75)
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
