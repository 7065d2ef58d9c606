"""Benchmark loaders on the real local files: counts, ids and gold handling per benchmark."""
import json

import pytest

from eval.benchmarks import BENCHMARKS, DEFAULT_BENCHMARKS, UnknownBenchmarkError, load_benchmark, parse_benchmarks
from mathrl_core.data_files import data_dir as resolve_data_dir
from mathrl_core.records import gsm8k_gold, last_boxed, number_gold, olympiad_gold

pytestmark = pytest.mark.skipif(not (resolve_data_dir() / "math500.jsonl").is_file(),
                                reason="shared data not found (set MATHRL_DATA_DIR)")

COUNTS = {"gsm8k": 1319, "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40,
          "minerva_math": 272, "minerva_math_rllm": 272, "olympiadbench": 675}


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_loads_with_unique_ids_and_golds(name):
    probs = load_benchmark(name)
    assert len(probs) == COUNTS[name]
    assert len({p.id for p in probs}) == len(probs)
    assert all(p.question.strip() and p.gold for p in probs)
    assert all(p.benchmark == name for p in probs)


def test_gold_handling_per_benchmark():
    g = {n: load_benchmark(n, limit=8) for n in BENCHMARKS}
    assert g["gsm8k"][0].gold == "18"                         # "... #### 18"
    assert g["aime24"][7].gold == "25"                        # "025" zero-padded string
    assert g["aime25"][0].gold == "70"                        # int 70
    assert g["amc23"][0].gold == "27"                         # float 27.0
    assert g["minerva_math"][0].gold == "1.6"                 # last \boxed{} of the solution
    assert g["minerva_math"][5].gold == "np.arcsin(10/13)"
    assert g["olympiadbench"][1].gold == ["\\frac{1}{2 n+2}"]  # ['$\\frac{1}{2 n+2}$']
    assert isinstance(g["minerva_math_rllm"][0].gold, list) and g["minerva_math_rllm"][0].gold == ["9.6"]
    assert g["math500"][0].id == "test/precalculus/807.json" and g["math500"][0].meta["level"] == 2
    gsm = load_benchmark("gsm8k")
    assert all("," not in p.gold for p in gsm) and any(p.id == "0" for p in gsm)


def test_gold_helpers():
    assert gsm8k_gold("so 1,450,000 in all\n#### 1,450,000") == "1450000"
    with pytest.raises(ValueError):
        gsm8k_gold("no final marker")
    assert number_gold("073") == "73" and number_gold(-1.0) == "-1" and number_gold(0.5) == "0.5"
    assert number_gold(588) == "588"
    assert last_boxed(r"so \boxed{\frac{a}{b}} and then \boxed{x^{2}}.") == "x^{2}"
    assert last_boxed(r"\boxed 2 is it") == "2"
    assert last_boxed(r"unclosed \boxed{3") is None and last_boxed("none") is None
    assert olympiad_gold(["$69$,$84$"]) == ["69,84"]
    assert olympiad_gold(["$\\$5$"]) == ["\\$5"]


def test_unknown_benchmark_and_missing_file_are_clear(tmp_path):
    with pytest.raises(UnknownBenchmarkError, match="known: gsm8k"):
        parse_benchmarks("math500,mathh500")
    with pytest.raises(UnknownBenchmarkError, match="file not found"):
        parse_benchmarks([str(tmp_path / "nope.jsonl")])
    with pytest.raises(FileNotFoundError, match="MATHRL_DATA_DIR"):
        load_benchmark("aime24", data_dir=tmp_path)
    assert parse_benchmarks("all") == list(DEFAULT_BENCHMARKS)


def test_data_dir_env_and_custom_jsonl(tmp_path, monkeypatch):
    rows = [{"problem": "1+1?", "answer": 2}, {"question": "half?", "solution": "It is \\boxed{\\frac12}."}]
    (tmp_path / "aime24.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setenv("MATHRL_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    with pytest.raises(ValueError, match="row 1"):   # aime24's spec wants an answer field
        load_benchmark("aime24")
    custom = tmp_path / "mine.jsonl"
    custom.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    probs = load_benchmark(str(custom))
    assert [(p.id, p.gold) for p in probs] == [("0", "2"), ("1", "\\frac12")]
    as_json = tmp_path / "heldout.json"
    as_json.write_text(json.dumps(rows))
    assert [p.gold for p in load_benchmark(str(as_json))] == ["2", "\\frac12"]
    assert parse_benchmarks(f"aime24,{as_json}") == ["aime24", str(as_json)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x", "answer": 1}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_benchmark(str(bad))
