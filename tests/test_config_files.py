"""Files a user hands the trainer and the eval harness: a YAML syntax error or a file that is not UTF-8 is an
error naming the file and line; secrets in a config are never written out (``public_dict``)."""
from __future__ import annotations

import dataclasses

import pytest

from trainer.config import RLConfig
from trainer.config_tree import REDACTED, ConfigError, load_config, public_dict

LATIN1 = "caf\u00e9".encode("latin-1")  # b"caf\xe9": not UTF-8


def test_yaml_syntax_error_names_file_line_and_column(tmp_path):
    bad = tmp_path / "recipe.yaml"
    bad.write_text("train:\n  actor_lr: 1e-5\n  total_steps: [1, 2\nrollout:\n  n: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(RLConfig, bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}:") and "YAML syntax error" in msg
    assert "<unicode string>" not in msg
    line = int(msg[len(str(bad)) + 1:].split(":")[0])
    assert 3 <= line <= 4, msg  # the unclosed list on line 3; the parser notices it at line 4


def test_tab_indented_yaml_names_the_line(tmp_path):
    bad = tmp_path / "tabs.yaml"
    bad.write_text("train:\n\tactor_lr: 1e-5\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:2:1: YAML syntax error"):
        load_config(RLConfig, bad)


def test_non_utf8_config_names_file_and_line(tmp_path):
    bad = tmp_path / "recipe.yaml"
    bad.write_bytes(b"name: ok\n# " + LATIN1 + b"\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:2:6: not UTF-8 text \(byte 0xe9"):
        load_config(RLConfig, bad)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_non_utf8_training_data_names_file_and_line(tmp_path, suffix):
    from mathrl_core.records import load_records

    path = tmp_path / f"train{suffix}"
    good = b'{"question": "1+1?", "answer": "2"}\n'
    path.write_bytes(good * 3 + b'{"question": "' + LATIN1 + b'?", "answer": "3"}\n')
    # line 4: '{"question": "' is 14 characters, then "caf", so the bad byte 0xe9 is column 18
    with pytest.raises(ValueError, match=rf"^{path}:4:18: not UTF-8 text \(byte 0xe9 at offset {3 * len(good) + 17}"):
        load_records(str(path))


def test_non_utf8_benchmark_and_samples_files_name_file_and_line(tmp_path):
    from eval.benchmarks import load_benchmark, read_rows
    from eval.samples_file import read_samples_file

    path = tmp_path / "bench.jsonl"
    path.write_bytes(b'{"problem": "1+1?", "answer": "2"}\n{"problem": "' + LATIN1 + b'", "answer": "2"}\n')
    with pytest.raises(ValueError, match=rf"^{path}:2:17: not UTF-8"):  # '{"problem": "' + "caf" = 16
        load_benchmark(str(path))
    js = tmp_path / "bench.json"
    js.write_bytes(b'[\n {"problem": "' + LATIN1 + b'", "answer": "2"}\n]\n')
    with pytest.raises(ValueError, match=rf"^{js}:2:18: not UTF-8"):
        read_rows(js)
    with pytest.raises(ValueError, match=rf"^{path}:2:17: not UTF-8"):
        read_samples_file(path)


def test_utf8_with_line_separators_inside_strings_still_reads(tmp_path):
    """Lines are split on newlines only: U+2028 inside a JSON string (valid JSON) is not a line break."""
    from mathrl_core.records import load_records

    path = tmp_path / "train.jsonl"
    path.write_text('{"question": "a\u2028b = ?", "answer": "2"}\n', encoding="utf-8")
    (rec,) = load_records(str(path))
    assert rec.question == "a\u2028b = ?"


def test_public_dict_redacts_secrets_and_a_saved_placeholder_is_rejected(tmp_path):
    cfg = load_config(RLConfig, None, ["reward.token=s3cret-token", "reward.url=http://127.0.0.1:1"])
    public = public_dict(cfg)
    assert public["reward"]["token"] == REDACTED and "s3cret-token" not in repr(public)
    assert public["reward"]["url"] == "http://127.0.0.1:1"  # only secrets are touched
    full = dataclasses.asdict(cfg)
    full["reward"]["token"] = REDACTED
    assert public == full
    assert cfg.reward.token == "s3cret-token"  # the live config keeps it
    assert public_dict(load_config(RLConfig, None, []))["reward"]["token"] is None  # unset stays visibly unset
    # a saved config.yaml fed back as a recipe: a clear error, never the placeholder sent as a bearer token
    import yaml

    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(public))
    with pytest.raises(ConfigError, match=r"reward.token: '<redacted>' is the placeholder"):
        load_config(RLConfig, saved)
    assert load_config(RLConfig, saved, ["reward.token=again"]).reward.token == "again"
