"""Synthetic arithmetic word problems: correct golds, deterministic, disjoint splits, tunable difficulty."""
from __future__ import annotations

import re

import pytest

from mathrl_core.records import load_records
from trainer.data.synthetic import (SyntheticConfig, generate_problems, split_of, synthetic_records,
                                    write_jsonl)

STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)\.$")


def _check_solution(p):
    """Re-do the arithmetic of every worked step and check the chain ends in the boxed gold."""
    lines = p.solution.split("\n")
    cur = int(re.search(r"starts with (\d+)", lines[0]).group(1))
    assert f"{cur}" in p.question
    for line in lines[1:-1]:
        a, op, b, c = STEP.search(line).groups()
        a, b, c = int(a), int(b), int(c)
        assert a == cur and f" {b} " in f" {p.question} "
        assert c == {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op] and (op != "/" or a % b == 0)
        assert c >= 1
        cur = c
    assert lines[-1] == f"The answer is \\boxed{{{cur}}}." and p.answer == str(cur)
    assert len(lines) - 2 == p.num_ops == len(p.ops)


def test_golds_are_correct_and_phrasing_varies():
    problems = generate_problems(400, seed=0)
    for p in problems:
        _check_solution(p)
    assert {1, 2, 3} == {p.num_ops for p in problems}
    assert {"add", "sub", "mul", "div"} == {op for p in problems for op in p.ops}
    assert len({p.question.split(" ")[0] for p in problems}) > 10  # names / openings vary
    assert len({p.question for p in problems}) == 400


def test_deterministic_and_disjoint_splits():
    a = generate_problems(300, "train", seed=1)
    assert a == generate_problems(300, "train", seed=1)
    assert a != generate_problems(300, "train", seed=2)
    test = {p.question for p in generate_problems(300, "test", seed=1)}
    for seed in (1, 2):
        train = {p.question for p in generate_problems(2000, "train", seed=seed)}
        assert not train & test
    assert all(split_of(q) == "test" for q in test)


def test_difficulty_knobs():
    easy = SyntheticConfig(min_ops=1, max_ops=1, start_range=(2, 5), operand_range=(2, 3), ops=("add", "sub"))
    for p in generate_problems(50, seed=0, config=easy):
        _check_solution(p)
        assert p.num_ops == 1 and int(p.answer) <= 8
    hard = SyntheticConfig(min_ops=3, max_ops=3, start_range=(50, 99), ops=("add", "mul"))
    probs = generate_problems(50, seed=0, config=hard)
    assert all(p.num_ops == 3 for p in probs) and max(int(p.answer) for p in probs) > 500
    with pytest.raises(ValueError, match="could only make"):
        generate_problems(100, "test", seed=0, config=SyntheticConfig(
            min_ops=1, max_ops=1, start_range=(2, 2), operand_range=(2, 2), ops=("add",), heldout_fraction=0.001))
    with pytest.raises(ValueError, match="ops must be"):
        SyntheticConfig(ops=("pow",))
    with pytest.raises(ValueError, match="min_ops"):
        SyntheticConfig(min_ops=0)


def test_records_round_trip_through_load_records(tmp_path):
    recs = synthetic_records(20, "test", seed=0)
    path = write_jsonl(tmp_path / "synth" / "test.jsonl", recs)
    loaded = load_records(str(path))
    assert [r.question for r in loaded] == [r["question"] for r in recs]
    assert [r.answer for r in loaded] == [r["answer"] for r in recs]
    assert loaded[0].extra["solution"].endswith(f"\\boxed{{{recs[0]['answer']}}}.")
