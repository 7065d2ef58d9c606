"""The step-wise JSON body parser: same result as json.loads, errors with positions, bounded steps."""
from __future__ import annotations

import json

import pytest

from reward_service.json_steps import JSONBodyError, NotAnObject, TooManyElements, parse_object


def run(gen):
    steps = 0
    try:
        while True:
            next(gen)
            steps += 1
    except StopIteration as e:
        return e.value, steps


@pytest.mark.parametrize("window", [1, 2, 3, 7, 64, 1 << 20])
def test_same_as_json_loads_for_any_window(window):
    obj = {"query": ["a", "é ü 漢字 \U0001f600", "x\\\"y\n", ""], "labels": [1, 2.5, -3e-2, ["1", "x=1"], None, True],
           "prompts": [], "scheme": "simplerl", "nested": {"a": [1, {"b": "c"}]}, "n": 12345678901234567890}
    for text in (json.dumps(obj), json.dumps(obj, indent=3, ensure_ascii=False), "\ufeff" + json.dumps(obj)):
        assert run(parse_object(text.encode("utf-8"), 100, window=window))[0] == obj


def test_numbers_cut_by_the_window_are_not_truncated():
    body = b'{"labels": [123456789, 98765, 1e100, true, false, null]}'
    for window in range(1, 12):
        assert run(parse_object(body, 10, window=window))[0] == {"labels": [123456789, 98765, 1e100, True, False, None]}


def test_yields_between_elements():
    body = json.dumps({"items": [{"completion": "x", "gold": "1"}] * 2000}).encode()
    value, steps = run(parse_object(body, 5000))
    assert len(value["items"]) == 2000 and steps >= 2000 // 256


@pytest.mark.parametrize("body,msg,pos", [
    (b'{"items": [', "Expecting value", 11),
    (b'{"items": [1,]}', "Expecting value", 13),
    (b'{"items": [1 2]}', "Expecting ',' delimiter", 13),
    (b'{"a" 1}', "Expecting ':' delimiter", 5),
    (b'{1: 2}', "Expecting property name enclosed in double quotes", 1),
    (b'{"a": 1} x', "Extra data", 9),
    (b'{"a": "unterminated}', "Unterminated string starting at", 6),
    (b'', "Expecting value", 0),
    (b'nope', "Expecting value", 0),
    (b'\xff\xfe{"items": []}', "the body is not valid UTF-8 (byte 0 is b'\\xff')", 0),
    (b'{"a": "\xc3"}', "not valid UTF-8", None),
])
def test_errors_name_the_problem_and_position(body, msg, pos):
    for window in (2, 1 << 20):
        with pytest.raises(JSONBodyError) as e:
            run(parse_object(body, 10, window=window))
        assert msg in e.value.msg
        if pos is not None:
            assert e.value.pos == pos, (window, e.value)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"x"', b"12", b"null", b"true"])
def test_not_an_object(body):
    with pytest.raises(NotAnObject, match="must be a JSON object"):
        run(parse_object(body, 10))


def test_too_many_elements_stops_early():
    body = b'{"query": [' + b",".join([b'"q"'] * 50) + b"] garbage that is never parsed"
    with pytest.raises(TooManyElements) as e:
        run(parse_object(body, 10))
    assert (e.value.key, e.value.limit) == ("query", 10)
