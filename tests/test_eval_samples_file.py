"""Reading samples files made elsewhere: field aliases, gold types, merging, JSON arrays, clear errors."""
import json

import pytest

from eval.samples_file import SamplesFileError, normalise_gold, read_samples_file


def test_normalise_gold_types():
    assert normalise_gold(27.0) == "27" and normalise_gold(0.25) == "0.25" and normalise_gold(70) == "70"
    assert normalise_gold("025") == "25" and normalise_gold(" \\frac{1}{2} ") == "\\frac{1}{2}"
    assert normalise_gold("$\\sqrt{2}$") == "\\sqrt{2}"
    assert normalise_gold("She pays 3 * 4 = 12\n#### 1,234") == "1234"
    assert normalise_gold(["$69$,$84$", 7.0, "7", ""]) == ["69,84", "7"]
    for bad in (None, True, {}, [], ""):
        with pytest.raises(ValueError):
            normalise_gold(bad)


def test_aliases_merging_and_json_array(tmp_path, caplog):
    rows = [{"data_source": "b1", "idx": 3, "ground_truth": "$\\frac{1}{2}$", "responses": ["x", "y"], "n": 3},
            {"task": "b1", "problem_id": 3, "label": "\\frac{1}{2}", "output": "z"},
            {"completion": "only", "answer": 5, "token_counts": 7},
            {"benchmark": "b2", "id": "q", "gold": [1, 2], "completions": [{"text": "a", "num_tokens": 2}],
             "lengths": [4]}]
    f = tmp_path / "mix.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    got = read_samples_file(f)
    assert [(s.problem.benchmark, s.problem.id, s.problem.gold, [c.text for c in s.completions]) for s in got] == [
        ("b1", "3", "\\frac{1}{2}", ["x", "y", "z"]), ("mix", "3", "5", ["only"]), ("b2", "q", ["1", "2"], ["a"])]
    assert got[1].completions[0].num_tokens == 7 and got[2].completions[0].num_tokens == 4
    assert "n=3 but 2 completions" in caplog.text
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps(rows))
    assert len(read_samples_file(arr)) == 3


@pytest.mark.parametrize("row,msg", [
    ({"id": 1, "completions": ["a"]}, "no gold field"),
    ({"id": 1, "gold": "1"}, "no completions field"),
    ({"id": 1, "gold": "1", "completions": "a", "num_tokens": [1, 2]}, "2 token counts for 1 completions"),
    ({"id": 1, "gold": "1", "completions": [3]}, "cannot read a completion"),
    ({"id": 1, "gold": {"a": 1}, "completions": ["a"]}, "unsupported gold"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_rows_name_the_line(tmp_path, row, msg):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"id": 0, "gold": "1", "completions": ["\\boxed{1}"]}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SamplesFileError, match=msg) as e:
        read_samples_file(f)
    assert "bad.jsonl:2" in str(e.value)


def test_conflicting_golds_for_one_problem(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"id": 1, "gold": "1", "completion": "a"}) + "\n" +
                 json.dumps({"id": 1, "gold": "2", "completion": "b"}) + "\n")
    with pytest.raises(SamplesFileError, match="another gold"):
        read_samples_file(f)
