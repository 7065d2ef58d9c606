"""Gold answers in every form the data sets use, reduced to a tuple of accepted answer strings.

* a list / tuple (OlympiadBench ``final_answer``, Minerva accepted forms): every element is accepted;
* an int (AIME 2025) or a float (AMC 27.0): its exact decimal form (27.0 -> ``27``); ``bool`` is refused;
* a GSM8K rationale: the text after the last ``####``;
* a solution with ``\\boxed{}`` / a Minerva "Final Answer: … I hope it is correct." / "the answer is":
  extracted like a completion (the whole final box span);
* otherwise the string itself.

A multiple-choice gold (``C``, ``(D) Alina``, ``\\text{(B)}``, "… the answer is (C) Cecile") is recognised by
:func:`gold_choice`, and the completion is then read for a choice letter.
Parsed golds are cached (bounded LRU): the same gold is graded n times per prompt.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Optional

from .extract import extract
from .normalize import drop_spacing

_ANCHOR = re.compile(r"\\boxed|\\fbox|####|final answer|answer is|answer:", re.I)
_CHOICE_GOLD = re.compile(r"^\(?([A-J])\)?(?:$|[.:)]\s+\S|\s+[A-Z][a-z]+)")


class GoldError(ValueError):
    """The gold answer is missing or of an unsupported type."""


def _from_number(x: float | int) -> str:
    if isinstance(x, bool):
        raise GoldError("gold must be a string, a number or a list, not a bool")
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        raise GoldError(f"gold is not a finite number: {x!r}")
    if x == int(x) and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _from_string(s: str) -> str:
    s = s.strip()
    if not s:
        raise GoldError("gold is empty")
    if not _ANCHOR.search(s):
        return s
    if "####" in s and "\\boxed" not in s:
        return s.rsplit("####", 1)[1].strip().split("\n")[0].strip()
    ex = extract(s, is_gold=True)
    if ex.answer is None:
        return "" if ex.reason == "empty \\boxed" else s  # a gold "\\boxed{}" is empty
    return ex.answer


@lru_cache(maxsize=4096)
def _gold_key(key: tuple) -> tuple[tuple[str, ...], Optional[str]]:
    answers = []
    for kind, val in key:
        answers.append(_from_number(val) if kind == "n" else _from_string(val))
    answers = tuple(a for a in answers if a.strip())
    if not answers:
        raise GoldError("gold is empty")
    choice = None
    for a in answers:
        c = gold_choice(a)
        if c:
            choice = c
            break
    return answers, choice


def _key(gold: Any) -> tuple:
    if isinstance(gold, str):
        return (("s", gold),)
    if isinstance(gold, bool):
        raise GoldError("gold must be a string, a number or a list, not a bool")
    if isinstance(gold, (int, float)):
        return (("n", gold),)
    if isinstance(gold, (list, tuple)):
        if not gold:
            raise GoldError("gold list is empty")
        out = []
        for g in gold:
            out.extend(_key(g))
        return tuple(out)
    raise GoldError(f"unsupported gold type {type(gold).__name__}")


def gold_answers(gold: Any) -> tuple[tuple[str, ...], Optional[str]]:
    """(accepted answer strings, choice letter or None) for a gold in any supported form."""
    return _gold_key(_key(gold))


def gold_choice(a: str) -> Optional[str]:
    """The letter when the gold answer is a multiple-choice option, else None."""
    t = drop_spacing(re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", a)).replace("$", "").strip()
    m = _CHOICE_GOLD.match(t)
    if m:
        return m.group(1)
    m = re.search(r"answer is\s*\n?\s*\(([A-J])\)|answer is\s*\n?\s*([A-J])(?:\s|$)", t)
    if m:
        return m.group(1) or m.group(2)
    return None
