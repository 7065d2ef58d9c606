"""Grading functions with controllable misbehaviour, for pool and service tests (imported in spawned workers).

``scripted_grade`` grades ``\\boxed{X}`` against the gold by string equality, and obeys markers in the text:
``HANG`` (sleeps for an hour), ``SPIN`` (burns CPU forever, holding the GIL in one long C call),
``RAISE`` (raises), ``DIE`` (the process exits at once, like a segfault), ``DIE_ONCE:<path>`` (exits the first
time, creating <path>; grades normally once <path> exists).
"""
from __future__ import annotations

import os
import re
import time

from reward_service.grading import CORRECT, NO_ANSWER, WRONG, Grade

_BOX = re.compile(r"\\boxed\{([^{}]*)\}")


def scripted_grade(completion: str, gold, *, last_number_fallback: bool = False) -> Grade:
    if "HANG" in completion:
        time.sleep(3600)
    if "SPIN" in completion:
        10 ** (10 ** 9)  # one C call that never returns in time
    if "RAISE" in completion:
        raise ArithmeticError("scripted failure")
    if "DIE_ONCE:" in completion:
        path = completion.split("DIE_ONCE:", 1)[1].split()[0]
        if not os.path.exists(path):
            open(path, "w").close()
            os._exit(3)
    elif "DIE" in completion:
        os._exit(3)
    m = _BOX.findall(completion)
    if not m:
        if last_number_fallback:
            nums = re.findall(r"-?\d+", completion)
            if nums:
                ans = nums[-1]
                return Grade(CORRECT if ans == str(gold) else WRONG, ans, "last number", "last_number")
        return Grade(NO_ANSWER, None, "no boxed answer", None)
    ans = m[-1].strip()
    return Grade(CORRECT if ans == str(gold).strip() else WRONG, ans, "string match", "boxed")


def broken_import(*a, **k):  # pragma: no cover - never reached: the module below fails to import
    raise AssertionError
