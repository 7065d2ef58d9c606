"""Reward schemes, the format bonus and plugin loading (module:function paths and a real entry point)."""
from __future__ import annotations

import importlib
import sys

import pytest

from reward_service.grading import CORRECT, NO_ANSWER, WRONG, Grade
from reward_service.rewards import (
    ENTRY_POINT_GROUP,
    RewardScheme,
    SchemeRegistry,
    UnknownSchemeError,
    openrlhf_score,
)

RIGHT = Grade(CORRECT, "1/2", "equal", "boxed")
RIGHT_TAG = Grade(CORRECT, "1/2", "equal", "answer_tag")
RIGHT_PHRASE = Grade(CORRECT, "1/2", "equal", "phrase")
BAD = Grade(WRONG, "3", "not equal", "boxed")
BAD_LAST = Grade(WRONG, "3", "not equal", "last_number")
NONE = Grade(NO_ANSWER, None, "no answer", None)
UNCLOSED = Grade(NO_ANSWER, None, "unclosed \\boxed", "boxed")
TIMEOUT = Grade(WRONG, None, "timeout", None)


@pytest.fixture
def reg():
    return SchemeRegistry()


@pytest.mark.parametrize("name,expected", [
    ("simplerl", [1.0, -0.5, -1.0, -0.5]),
    ("correctness", [1.0, 0.0, 0.0, 0.0]),
    ("rlinf", [5.0, -5.0, -5.0, -5.0]),
])
def test_builtin_tables(reg, name, expected):
    s = reg.get(name)
    assert [s(g) for g in (RIGHT, BAD, NONE, TIMEOUT)] == expected


def test_default_and_fallback_flags(reg):
    assert reg.get(None).name == "simplerl"
    assert reg.get("correctness").last_number_fallback is True
    assert reg.get("simplerl").last_number_fallback is False
    assert SchemeRegistry(default="rlinf").get(None).name == "rlinf"
    with pytest.raises(UnknownSchemeError):
        SchemeRegistry(default="nope")


def test_format_bonus_uses_the_extraction_method(reg):
    s = reg.get("simplerl+format")
    assert s.name == "simplerl+format"
    assert s(RIGHT) == pytest.approx(1.1)
    assert s(RIGHT_TAG) == pytest.approx(1.1)
    assert s(RIGHT_PHRASE) == pytest.approx(1.0)  # "The answer is": right, but not in the asked-for format
    assert s(BAD) == pytest.approx(-0.4)  # the bonus rewards the format, right or wrong
    assert s(BAD_LAST) == pytest.approx(-0.5)
    assert s(NONE) == pytest.approx(-1.0)
    assert s(UNCLOSED) == pytest.approx(-1.0)  # a truncated \boxed{ is no answer, and no format
    assert SchemeRegistry(format_bonus=0.5).get("correctness+format")(RIGHT) == pytest.approx(1.5)
    assert reg.get("correctness+format").last_number_fallback is True


def test_unknown_scheme_lists_known_ones(reg):
    with pytest.raises(UnknownSchemeError) as e:
        reg.get("simple_rl")
    assert e.value.known == ["correctness", "rlinf", "simplerl"]
    assert "correctness, rlinf, simplerl" in str(e.value)
    with pytest.raises(UnknownSchemeError):
        reg.get("nope+format")


def test_openrlhf_score():
    assert [openrlhf_score(g) for g in (RIGHT, BAD, NONE)] == [1.0, 0.0, 0.0]


def test_plugin_from_module_path(reg):
    s = reg.load_plugin("reward_service_fakes:length_scheme")
    assert s.name == "length_scheme" and s.last_number_fallback is False
    assert s.description.startswith("Correctness minus 0.001 per character")
    assert reg.get("length_scheme")(RIGHT, "x" * 100, "1/2") == pytest.approx(0.9)
    renamed = reg.load_plugin("gsm8k2=reward_service_fakes:gsm8k_style_scheme")
    assert renamed.name == "gsm8k2" and renamed.last_number_fallback is True
    assert reg.get("gsm8k2+format")(RIGHT) == pytest.approx(2.1)
    assert "gsm8k2" in reg.names() and any(d["name"] == "gsm8k2" for d in reg.describe())


@pytest.mark.parametrize("spec,msg", [
    ("reward_service_fakes:not_a_scheme", "must accept (grade, completion, gold)"),
    ("reward_service_fakes:missing", "has no attribute"),
    ("no_such_module_xyz:f", "No module named"),
    ("reward_service_fakes", "expected 'package.module:function'"),
])
def test_bad_plugins_fail_clearly(reg, spec, msg):
    with pytest.raises(ValueError) as e:
        reg.load_plugin(spec)
    assert msg in str(e.value) and spec in str(e.value)


def test_register_rejects_bad_names(reg):
    with pytest.raises(ValueError):
        reg.register(RewardScheme("a+format", lambda g, c, x: 0.0))
    with pytest.raises(ValueError):
        reg.register(RewardScheme("simplerl", lambda g, c, x: 0.0))  # no silent override


def test_entry_point_group(tmp_path, monkeypatch, reg):
    """A real installed-distribution entry point (a dist-info folder on sys.path)."""
    (tmp_path / "ep_scheme_mod.py").write_text(
        "def triple(grade, completion, gold):\n"
        "    '''3 if correct.'''\n"
        "    return 3.0 if grade.verdict == 'correct' else 0.0\n"
    )
    dist = tmp_path / "ep_scheme_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-scheme-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntriple = ep_scheme_mod:triple\nbroken = ep_scheme_mod:nothing_here\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    loaded = reg.load_entry_points()
    assert loaded == ["triple"]  # the broken one is skipped (and logged), not fatal
    assert reg.get("triple")(RIGHT) == 3.0 and reg.get("triple").description == "3 if correct."
    sys.modules.pop("ep_scheme_mod", None)
