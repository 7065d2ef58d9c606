"""Pure grading library: extract the final answer of a completion and check it against the gold.

Public API::

    grade(completion: str, gold, *, last_number_fallback: bool = False) -> Grade

``gold`` may be a string, a list of accepted answers, an int / float, a GSM8K rationale ending in ``#### N``
or a solution containing ``\\boxed{}`` (:mod:`.gold`). ``completion`` may be a full model output or a bare
answer. The verdict is ``correct``, ``wrong`` or ``no_answer``; ``method`` says how the answer was found
(``answer_tag``, ``boxed``, ``phrase``, ``minerva``, ``gsm8k``, ``last_number``, ``bare``, ``display``) so a
reward scheme can give a format bonus.

Modules: :mod:`.extract` (find the answer), :mod:`.prose` (answers in sentences, labelled statements, bare
answers, refusals), :mod:`.choice` (choice letters), :mod:`.normalize` (clean-up, unicode, units),
:mod:`.notation` (alternative notations), :mod:`.qualifiers` ("only", "for all x", parameter declarations),
:mod:`.bound` (bound variables), :mod:`.numbers` (exact values), :mod:`.numeric` (numeric equality, rounding),
:mod:`.expr` (our expression parser) and :mod:`.arith` (its arithmetic), :mod:`.identity` (equality of values
and of functions at points of both signs), :mod:`.structure` (lists, intervals, equations, matrices, times),
:mod:`.compare` (equivalence rules), :mod:`.symbolic` (sympy through latex2sympy2-extended), :mod:`.screen`
(limits that bound every item's cost), :mod:`.gold` (gold forms).

A refusal or placeholder answer ("I don't know", ``\\boxed{?}``) is ``no_answer`` wherever it stands, so that
refusing never scores better than a wrong attempt under schemes that punish no_answer hardest.

No web imports here, no signals, no threads. Time limits are enforced one level up, by killing worker
processes (``reward_service.pool``), never by SIGALRM; the pre-screen keeps each item well under a second.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

CORRECT, WRONG, NO_ANSWER = "correct", "wrong", "no_answer"
VERDICTS = (CORRECT, WRONG, NO_ANSWER)
METHODS = ("answer_tag", "boxed", "phrase", "minerva", "gsm8k", "last_number", "bare", "display")

MAX_COMPLETION_CHARS = 1_000_000  # longer completions are refused (wrong, "completion too long")
MAX_ANSWER_CHARS = 5_000          # a longer extracted answer is compared as a string only (bounded cost)


@dataclass(frozen=True)
class Grade:
    verdict: str                 # "correct" | "wrong" | "no_answer"
    answer: Optional[str]        # the extracted final answer (None when there is none)
    reason: str                  # short human-readable explanation
    method: Optional[str] = None  # how the answer was found: "answer_tag", "boxed", "phrase", ... (format bonus uses it)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grade(completion: str, gold: Any, *, last_number_fallback: bool = False) -> Grade:
    """Grade one completion against a gold answer. See the module docstring.

    Raises ``TypeError`` when ``completion`` is not a string and :class:`GoldError` (a ``ValueError``) when
    the gold is empty or of an unsupported type.
    """
    from .compare import answers_equal, squash
    from .extract import extract
    from .gold import gold_answers
    from .normalize import clean
    from .choice import MULTI, extract_choice
    from .prose import non_answer

    if not isinstance(completion, str):
        raise TypeError(f"completion must be a string, not {type(completion).__name__}")
    golds, choice = gold_answers(gold)
    if len(completion) > MAX_COMPLETION_CHARS:
        return Grade(WRONG, None, "completion too long", None)
    ex = extract(completion, last_number_fallback=last_number_fallback, choice=choice is not None)
    if ex.answer is None:
        return Grade(NO_ANSWER, None, ex.reason, ex.method)
    answer = ex.answer.strip()
    if len(answer) > MAX_ANSWER_CHARS:
        ok = any(squash(answer) == squash(g) for g in golds)
        return Grade(CORRECT if ok else WRONG, answer[:200] + "...", "identical" if ok else "answer too long", ex.method)
    if not clean(answer):
        return Grade(NO_ANSWER, None, "empty answer", ex.method)
    why = non_answer(answer)
    if why:
        return Grade(NO_ANSWER, None, why, ex.method)
    if choice is not None:
        letter = extract_choice(answer)
        if letter == MULTI:
            return Grade(WRONG, answer, "several choices", ex.method)
        if letter is not None:
            ok = letter == choice
            return Grade(CORRECT if ok else WRONG, answer, "same choice" if ok else f"choice {letter} vs {choice}", ex.method)
    reason = "different"
    for g in golds:
        try:
            ok, reason = answers_equal(g, answer)
        except RecursionError:
            ok, reason = False, "nesting too deep"
        if ok:
            return Grade(CORRECT, answer, reason, ex.method)
    return Grade(WRONG, answer, reason, ex.method)


def warmup() -> None:
    """Load the symbolic stack (sympy, latex2sympy2-extended, antlr) ahead of the first item (~1-2 s)."""
    from .symbolic import warmup as _w
    _w()
    grade("\\boxed{\\frac{1}{2}}", "0.5")


from .gold import GoldError  # noqa: E402  (re-export)

__all__ = ["grade", "warmup", "Grade", "GoldError", "CORRECT", "WRONG", "NO_ANSWER", "VERDICTS", "METHODS"]
