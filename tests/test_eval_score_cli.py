"""`rl-eval score` on hand-built samples files: the real grader (worker pool / HTTP service) and
hand-computed metrics. Also compare, plot and the clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.cli import main

REPO = Path(__file__).resolve().parent.parent

# toy_a: n=4 per problem.
#   p1 gold "\frac{1}{2}": "3" wrong, "0.5" right, "1/2" right, no answer      -> c=2
#      string voting would pick "3" (three different strings, one vote each, "3" first): wrong;
#      clustered by equivalence 0.5 and 1/2 vote together (2 votes vs 1): maj@4 right.
#      maj@1 = sample 0 ("3") wrong; maj@2 = ["3", "0.5"] tie -> earliest cluster "3": wrong.
#   p2 gold 42 (int): 41, 41, 42, 42                                            -> c=2, maj@4 tie 2-2 -> "41" wrong
#   p3 gold 27.0 (float): 26, 28, no answer, 26                                  -> c=0
# toy_b: n differs per line.
#   p4 gold ["10"] (list), completions as {"text": ...} dicts: 10, 10         -> n=2, c=2
#   p5 gold a GSM8K rationale ending "#### 1,000": 1000, 999, 999             -> n=3, c=1, maj@2 tie -> 1000 right
ROWS = [
    {"benchmark": "toy_a", "id": "p1", "gold": "\\frac{1}{2}",
     "completions": ["So it is \\boxed{3}.", "Thus \\boxed{0.5}", "So the answer is \\boxed{1/2}.",
                    "Let me think step by step. First we compute the area, then we divide it by two."]},
    {"benchmark": "toy_a", "id": "p2", "gold": 42, "n": 4, "model": "whatever",
     "completions": ["\\boxed{41}", "\\boxed{41}", "\\boxed{42}", "The answer is \\boxed{42}"]},
    {"benchmark": "toy_a", "id": "p3", "gold": 27.0, "extra": {"x": [1, 2]},
     "completions": ["\\boxed{26}", "\\boxed{28}", "<think>hmm, the speed is", "\\boxed{26}"]},
    {"benchmark": "toy_b", "id": 4, "gold": ["10"], "completions": [{"text": "\\boxed{10}"}, {"text": "so \\boxed{10}"}]},
    {"benchmark": "toy_b", "id": 5, "gold": "3 + 997 = 1000\n#### 1,000",
     "completions": ["\\boxed{1000}", "\\boxed{999}", "\\boxed{999}"]},
]

# Hand-computed (pass@k = 1 - C(n-c,k)/C(n,k) per problem, then the mean over problems):
#   toy_a pass@1 = (2/4 + 2/4 + 0)/3 = 1/3
#         pass@2 = (1 - C(2,2)/C(4,2)) = 5/6 for p1 and p2, 0 for p3  -> (5/6 + 5/6)/3 = 5/9
#         pass@4 = (1 + 1 + 0)/3 = 2/3
#         maj@1 = maj@2 = 0, maj@4 = (1 + 0 + 0)/3 = 1/3
#         avg pass rate = 1/3, no-answer rate = (1/4 + 0 + 1/4)/3 = 1/6
#   toy_b pass@1 = (2/2 + 1/3)/2 = 2/3
#         pass@2 = (1 + (1 - C(2,2)/C(3,2)))/2 = (1 + 2/3)/2 = 5/6
#         pass@4: no problem has 4 samples -> None (and no average)
#         maj@1 = (1 + 1)/2 = 1, maj@2 = 1 (p5: 1000 vs 999 tie -> 1000 came first)
#   average = unweighted mean of the two benchmarks
EXPECTED = {
    "toy_a": {"pass@1": 1 / 3, "pass@2": 5 / 9, "pass@4": 2 / 3, "maj@1": 0.0, "maj@2": 0.0, "maj@4": 1 / 3,
              "avg_pass_rate": 1 / 3, "no_answer_rate": 1 / 6},
    "toy_b": {"pass@1": 2 / 3, "pass@2": 5 / 6, "pass@4": None, "maj@1": 1.0, "maj@2": 1.0, "maj@4": None,
              "avg_pass_rate": 2 / 3, "no_answer_rate": 0.0},
}


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _check(summary):
    for bench, exp in EXPECTED.items():
        got = summary["benchmarks"][bench]
        for k, v in exp.items():
            assert got[k] == (None if v is None else pytest.approx(v, abs=1e-12)), (bench, k, got[k], v)
    avg = summary["average"]
    assert avg["pass@1"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert avg["pass@2"] == pytest.approx((5 / 9 + 5 / 6) / 2)
    assert avg["maj@2"] == pytest.approx(0.5)
    assert avg["pass@4"] is None and avg["maj@4"] is None
    assert summary["benchmarks"]["toy_b"]["samples_per_problem"] == [2, 3]


def test_score_cli_reproduces_hand_computed_metrics(tmp_path):
    f = _write(tmp_path / "samples.jsonl", ROWS)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "eval.cli", "score", "--samples", str(f), "--k", "1,2,4",
                           "--out", str(out), "--no-progress", "--grader-workers", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    _check(summary)
    assert summary["grader"] == "pool"
    recs = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 17
    p1 = [r for r in recs if r["id"] == "p1"]
    assert [r["verdict"] for r in p1] == ["wrong", "correct", "correct", "no_answer"]
    assert p1[1]["cluster"] == p1[2]["cluster"] != p1[0]["cluster"] and p1[3]["cluster"] is None
    assert {r["gold"] for r in recs if r["id"] == "p2"} == {"42"}       # int gold -> "42"
    assert {r["gold"] for r in recs if r["id"] == "5"} == {"1000"}       # GSM8K rationale -> final number
    table = (out / "table.md").read_text()
    assert "| Model | toy_a | toy_b | Avg. |" in table and "| run | 33.3 | 66.7 | 50.0 |" in table
    assert "| run | 33.3 | 66.7 | 50.0 |" in proc.stdout


def test_score_one_sample_per_line_with_token_counts(tmp_path):
    # The same benchmark as one completion per line (merged by (benchmark, id)), with token counts.
    rows = []
    for r in ROWS[:3]:
        for j, c in enumerate(r["completions"]):
            rows.append({"dataset": r["benchmark"], "prompt_id": r["id"], "answer": r["gold"], "response": c,
                         "num_tokens": 10 * (j + 1)})
    f = _write(tmp_path / "flat.jsonl", rows)
    assert main(["score", "--samples", str(f), "--k", "1,4", "--out", str(tmp_path / "o"), "--grader", "inline",
                 "--no-progress"]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    a = s["benchmarks"]["toy_a"]
    assert a["pass@1"] == pytest.approx(1 / 3) and a["pass@4"] == pytest.approx(2 / 3)
    assert a["maj@4"] == pytest.approx(1 / 3)
    assert s["len_unit"] == "tokens" and a["avg_len"] == pytest.approx(25.0)   # (10+20+30+40)/4 per problem


def test_score_http_service_matches_pool(tmp_path):
    from reward_service.client import start_service

    f = _write(tmp_path / "samples.jsonl", ROWS)
    with start_service(workers=1) as svc:
        assert main(["score", "--samples", str(f), "--k", "1,2,4", "--out", str(tmp_path / "h"),
                     "--grader-url", svc.url, "--no-progress"]) == 0
    s = json.loads((tmp_path / "h" / "summary.json").read_text())
    _check(s)
    assert s["grader"] == "http"


def test_score_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    assert main(["score", "--samples", str(bad), "--grader", "inline"]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    nogold = _write(tmp_path / "nogold.jsonl", [{"id": 1, "completions": ["\\boxed{1}"]}])
    assert main(["score", "--samples", str(nogold), "--grader", "inline"]) == 2
    assert "no gold field" in capsys.readouterr().err
    assert main(["score", "--samples", str(tmp_path / "missing.jsonl"), "--grader", "inline"]) == 2
    assert "not found" in capsys.readouterr().err
    f = _write(tmp_path / "s.jsonl", ROWS[:1])
    assert main(["score", "--samples", str(f), "--k", "8", "--grader", "inline"]) == 0  # k > n: metric None, warned


def test_compare_and_plot(tmp_path, capsys):
    from eval.report import write_run

    for step, acc in ((10, 0.2), (20, 0.35), (30, 0.5)):
        summ = {"ks": [1], "len_unit": "tokens", "step": step,
                "benchmarks": {"math500": {"n_problems": 4, "pass@1": acc, "avg_len": 300.0},
                               "aime24": {"n_problems": 2, "pass@1": acc / 2, "avg_len": 900.0}},
                "average": {"pass@1": 0.75 * acc, "avg_len": 600.0}}
        write_run(tmp_path / f"step_{step}", [], summ)
    assert main(["compare", str(tmp_path / "step_10"), str(tmp_path / "step_30" / "summary.json")]) == 0
    out = capsys.readouterr().out
    assert "| Model | AIME24 | MATH500 | Avg. |" in out
    assert "| step_10 | 10.0 | 20.0 | 15.0 |" in out and "| step_30 | 25.0 | 50.0 | 37.5 |" in out
    png = tmp_path / "curve.png"
    assert main(["plot", *(str(tmp_path / f"step_{s}") for s in (30, 10, 20)), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    from eval.plot import curve_points
    pts = curve_points([tmp_path / f"step_{s}" for s in (30, 10, 20)], "pass@1")
    assert pts["MATH500"] == [(10, 0.2), (20, 0.35), (30, 0.5)]
    assert main(["compare", str(tmp_path / "nope")]) == 2
