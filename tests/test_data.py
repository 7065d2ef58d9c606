"""Prompt records from the real files in ../shared/data, field mapping, errors, and resumable batching."""
from __future__ import annotations

import json

import pytest

from mathrl_core.data_files import data_dir
from mathrl_core.records import PromptRecord, load_records
from trainer.data.datasets import PromptDataset


def test_real_training_and_eval_files():
    assert data_dir().is_dir(), f"data directory {data_dir()} missing (set MATHRL_DATA_DIR)"
    gsm = load_records("gsm8k_train")
    assert len(gsm) == 7473 and gsm[0].question.startswith("Natalia sold clips")
    assert gsm[0].answer.rstrip().endswith("#### 72")  # the rationale is kept as gold text
    math = load_records(str(data_dir() / "math_train.jsonl"))
    assert len(math) == 7498  # two records with an empty \boxed{} gold are skipped (indices 5529, 5531)
    assert {r.index for r in math}.isdisjoint({5529, 5531}) and math[0].extra["level"].startswith("Level")
    assert "solution" in math[0].extra
    m500 = load_records("math500", split="test")
    assert len(m500) == 500 and m500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    olymp = load_records("olympiadbench")
    assert len(olymp) == 675 and isinstance(olymp[0].answer, list) and olymp[0].answer == ["2"]
    aime25 = load_records("aime25")
    assert len(aime25) == 30 and all(type(r.answer) is int for r in aime25)
    amc = load_records("amc23")
    assert len(amc) == 40 and all(type(r.answer) is float for r in amc) and amc[0].answer == 27.0
    minerva = load_records("minerva_math")  # no answer field: the gold is the solution with its \boxed{}
    assert len(minerva) == 272 and all("\\boxed" in r.answer for r in minerva)


def test_field_overrides_and_formats(tmp_path):
    rows = [{"q": "1+1?", "sol": "2", "id": 7}, {"q": "2+2?", "sol": "4", "id": 8}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    recs = load_records(str(tmp_path / "a.jsonl"), question_key="q", answer_key="sol")
    assert [(r.question, r.answer, r.index, r.extra) for r in recs] == [("1+1?", "2", 0, {"id": 7}),
                                                                        ("2+2?", "4", 1, {"id": 8})]
    (tmp_path / "b.json").write_text(json.dumps({"data": [{"problem": "x?", "final_answer": ["1", "2"]}]}))
    assert load_records(str(tmp_path / "b.json"))[0].answer == ["1", "2"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"prompt": "p?", "gt_answer": "3"}]), tmp_path / "train.parquet")
    assert load_records(str(tmp_path / "train.parquet"))[0].question == "p?"
    assert load_records(str(tmp_path))[0].answer == "3"  # a directory holding {split}.parquet
    assert len(load_records("gsm8k_test", limit=5)) == 5


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_records(str(tmp_path / "nope.jsonl"))
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "x", "answer": "1"}) + "\n")
    with pytest.raises(KeyError, match=r"no question field.*\['answer', 'text'\]"):
        load_records(str(tmp_path / "a.jsonl"))
    with pytest.raises(KeyError, match="answer_key 'gold' not in record 0"):
        load_records(str(tmp_path / "a.jsonl"), question_key="text", answer_key="gold")
    (tmp_path / "b.jsonl").write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(KeyError, match="no answer field"):
        load_records(str(tmp_path / "b.jsonl"))
    assert load_records(str(tmp_path / "b.jsonl"), require_answer=False)[0].answer is None
    (tmp_path / "c.jsonl").write_text('{"question": "a", "answer": "1"}\n{bad json\n')
    with pytest.raises(ValueError, match=r"c.jsonl:2: invalid JSON"):
        load_records(str(tmp_path / "c.jsonl"))
    (tmp_path / "d.jsonl").write_text('{"question": "a", "answer": "1"}\n{"question": "b", "answer": ""}\n')
    assert len(load_records(str(tmp_path / "d.jsonl"))) == 1
    with pytest.raises(ValueError, match="record 1: answer field 'answer' is missing, empty"):
        load_records(str(tmp_path / "d.jsonl"), skip_invalid=False)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="without train.jsonl"):
        load_records(str(tmp_path / "empty_dir"))


def _records(n):
    return [PromptRecord(f"q{i}", str(i), i) for i in range(n)]


def test_prompt_dataset_order_epochs_and_resume():
    ds = PromptDataset(_records(10), batch_size=4, seed=3)
    assert ds.batches_per_epoch == 2
    batches = [[r.index for r in ds.next_batch()] for _ in range(6)]  # 3 epochs, tail of 2 dropped each time
    assert ds.epoch == 2
    e0, e1 = batches[0] + batches[1], batches[2] + batches[3]
    assert len(set(e0)) == 8 and e0 != e1  # no repeats within an epoch, reshuffled between epochs
    assert batches == [[r.index for r in b] for b, _ in zip(PromptDataset(_records(10), 4, seed=3), range(6))]
    assert batches != [[r.index for r in PromptDataset(_records(10), 4, seed=4).next_batch()] for _ in range(6)]

    # stop after 3 batches, save, resume in a fresh object: the same remaining batches
    a = PromptDataset(_records(10), batch_size=4, seed=3)
    for _ in range(3):
        a.next_batch()
    state = json.loads(json.dumps(a.state_dict()))
    b = PromptDataset(_records(10), batch_size=4, seed=3)
    b.load_state_dict(state)
    assert [[r.index for r in b.next_batch()] for _ in range(3)] == batches[3:]
    with pytest.raises(ValueError, match="num_records=10"):
        PromptDataset(_records(11), batch_size=4, seed=3).load_state_dict(state)


def test_prompt_dataset_no_shuffle_keep_last_and_errors():
    ds = PromptDataset(_records(5), batch_size=2, shuffle=False, drop_last=False)
    assert [[r.index for r in ds.next_batch()] for _ in range(4)] == [[0, 1], [2, 3], [4], [0, 1]]
    with pytest.raises(ValueError, match="larger than the dataset"):
        PromptDataset(_records(3), batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        PromptDataset(_records(3), batch_size=0)


def test_hub_id_goes_through_load_dataset_with_a_clear_error(monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # no network here: fail fast, not after retries
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="could not load 'openai/gsm8k' .*hub dataset"):
        load_records("openai/gsm8k", config_name="main")
