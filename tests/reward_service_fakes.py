"""Grading functions with controllable misbehaviour, for pool and service tests (imported in spawned workers).

``scripted_grade`` grades ``\\boxed{X}`` against the gold by string equality, and obeys markers in the text:
``HANG`` (sleeps for an hour), ``SPIN`` (burns CPU forever, holding the GIL in one long C call), ``NAP``
(sleeps 0.05 s, to make a batch last a while),
``RAISE`` (raises), ``BADGOLD`` (rejects its input, like an empty gold), ``DIE`` (the process exits at once, like a segfault), ``DIE_ONCE:<path>`` (exits the first
time, creating <path>; grades normally once <path> exists).

``flaky_start_grade`` is ``scripted_grade`` (``flaky_start_or_real``: ``scripted_or_real``), but a worker cannot
load it while the file named by the environment variable ``MATHRL_FAKE_FAIL_START`` exists (a grader that fails
to start, on demand).
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
    if "NAP" in completion:
        time.sleep(0.05)
    if "SPIN" in completion:
        10 ** (10 ** 9)  # one C call that never returns in time
    if "RAISE" in completion:
        raise ArithmeticError("scripted failure")
    if "BADGOLD" in completion:
        err = ValueError("scripted: gold rejected")
        err.invalid_input = True
        raise err
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


def __getattr__(name: str):
    """Module attribute hook: ``flaky_start_grade`` (``scripted_grade``) and ``flaky_start_or_real``
    (``scripted_or_real``) cannot be loaded while the file named by $MATHRL_FAKE_FAIL_START exists."""
    if name in ("flaky_start_grade", "flaky_start_or_real"):
        flag = os.environ.get("MATHRL_FAKE_FAIL_START")
        if flag and os.path.exists(flag):
            raise AttributeError(f"scripted start failure: {flag} exists")
        return scripted_grade if name == "flaky_start_grade" else scripted_or_real
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MARKERS = ("HANG", "SPIN", "NAP", "RAISE", "DIE", "BADGOLD")


def scripted_or_real(completion: str, gold, *, last_number_fallback: bool = False) -> Grade:
    """The real grader, except for completions carrying one of the scripted markers."""
    if any(m in completion for m in _MARKERS):
        return scripted_grade(completion, gold, last_number_fallback=last_number_fallback)
    from reward_service.grading import grade

    return grade(completion, gold, last_number_fallback=last_number_fallback)


def length_scheme(grade: Grade, completion: str, gold) -> float:
    """Correctness minus 0.001 per character (a plugin reward scheme for tests)."""
    return (1.0 if grade.verdict == CORRECT else 0.0) - 0.001 * len(completion)


def gsm8k_style_scheme(grade: Grade, completion: str, gold) -> float:
    """2 if correct else 0, with the last-number fallback."""
    return 2.0 if grade.verdict == CORRECT else 0.0


gsm8k_style_scheme.last_number_fallback = True


def nan_scheme(grade: Grade, completion: str, gold) -> float:
    """Returns NaN for wrong answers (a broken plugin)."""
    return 1.0 if grade.verdict == CORRECT else float("nan")


def not_a_scheme(grade):  # wrong signature: loading it must fail clearly
    return 0.0
