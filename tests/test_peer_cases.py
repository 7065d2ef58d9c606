"""Regression test on the shared peer cases: 656 (completion, gold) pairs from public graders' own test suites
(Math-Verify, lighteval, Hendrycks MATH, MARIO, Qwen, lm-eval minerva, latex2sympy2-extended).

Headline figure: accuracy over the non-disputed cases (>= 99 % required) and false positives (wrong answers
graded correct). Two Hendrycks cases are listed as policy conflicts: they expect ``4, 10, -2`` != ``10, 4, -2``
while MARIO's ``1, 3, 2`` == ``1, 2, 3`` (same shape, opposite label) and the issue's rule is that a bare list of
solutions is unordered. They still count as failures in the accuracy; they are reported apart from the other
false positives (at most 1 allowed).

Run ``pytest -s tests/test_peer_cases.py`` to see the figures and every failure.
"""
import json
import os
import time
from pathlib import Path

import pytest

from reward_service.grading import CORRECT, grade, warmup

MIN_ACCURACY = 0.99
MAX_FALSE_POSITIVES = 1
MAX_SECONDS = 2.0

POLICY_CONFLICTS = {
    "hendrycks_math-0001": "bare solution lists are unordered (issue 2; MARIO mario_eval-0011 expects the opposite)",
    "hendrycks_math-0008": "bare solution lists are unordered (issue 2; MARIO mario_eval-0011 expects the opposite)",
}


def _cases_path() -> Path:
    env = os.environ.get("MATHRL_PEER_CASES")
    if env:
        return Path(env)
    data = os.environ.get("MATHRL_DATA_DIR")
    base = Path(data).parent if data else Path(__file__).resolve().parents[1].parent / "shared"
    return base / "grader" / "peer_cases.jsonl"


@pytest.fixture(scope="module")
def results():
    path = _cases_path()
    if not path.exists():
        pytest.skip(f"peer cases not found at {path} (set MATHRL_PEER_CASES)")
    cases = [json.loads(line) for line in path.open()]
    warmup()
    out = []
    for c in cases:
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        g = grade(c["pred"], c["gold"])
        out.append((c, g, time.perf_counter() - t_wall, time.process_time() - t_cpu))
    return out


def test_peer_cases_accuracy(results):
    scored = [(c, g) for c, g, _, _ in results if not c["disputed"]]
    fails = [(c, g) for c, g in scored if (g.verdict == CORRECT) != c["expected"]]
    fps = [(c, g) for c, g in fails if g.verdict == CORRECT]
    other_fps = [(c, g) for c, g in fps if c["id"] not in POLICY_CONFLICTS]
    acc = 1 - len(fails) / len(scored)
    print(f"\npeer cases: {len(scored) - len(fails)}/{len(scored)} non-disputed right = {acc:.2%}; "
          f"false positives {len(fps)} ({len(fps) - len(other_fps)} listed policy conflicts)")
    for c, g in fails:
        tag = "FP" if g.verdict == CORRECT else "FN"
        note = POLICY_CONFLICTS.get(c["id"], "")
        print(f"  {tag} {c['id']}: pred={c['pred'][-80:]!r} gold={str(c['gold'])[-60:]!r} -> {g.verdict} "
              f"({g.reason}) {note}")
    disputed = [(c, g) for c, g, _, _ in results if c["disputed"]]
    agree = sum((g.verdict == CORRECT) == c["expected"] for c, g in disputed)
    print(f"  disputed cases (not scored): {agree}/{len(disputed)} agree with the peers' label")
    assert acc >= MIN_ACCURACY, f"accuracy {acc:.2%} < {MIN_ACCURACY:.0%}"
    assert len(other_fps) <= MAX_FALSE_POSITIVES, [c["id"] for c, _ in other_fps]


def test_peer_cases_time(results):
    worst_wall = max(results, key=lambda r: r[2])
    worst_cpu = max(results, key=lambda r: r[3])
    total = sum(r[2] for r in results)
    print(f"\npeer cases time: total {total:.1f}s, worst wall {worst_wall[2]:.2f}s ({worst_wall[0]['id']}), "
          f"worst cpu {worst_cpu[3]:.2f}s ({worst_cpu[0]['id']})")
    # CPU time of this process: other jobs on a shared machine do not inflate it
    assert worst_cpu[3] < MAX_SECONDS, worst_cpu[0]["id"]
