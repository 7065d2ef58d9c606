"""Pure grading library: extract the final answer of a completion and check it against the gold.

Public API::

    grade(completion: str, gold, *, last_number_fallback: bool = False) -> Grade

No web imports here. Time limits are enforced one level up, by killing worker processes
(``reward_service.pool``), never by SIGALRM.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

CORRECT, WRONG, NO_ANSWER = "correct", "wrong", "no_answer"
VERDICTS = (CORRECT, WRONG, NO_ANSWER)


@dataclass(frozen=True)
class Grade:
    verdict: str                 # "correct" | "wrong" | "no_answer"
    answer: Optional[str]        # the extracted final answer (None when there is none)
    reason: str                  # short human-readable explanation
    method: Optional[str] = None  # how the answer was found: "answer_tag", "boxed", "phrase", ... (format bonus uses it)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grade(completion: str, gold: Any, *, last_number_fallback: bool = False) -> Grade:
    """Grade one completion against a gold answer. See the module docstring."""
    raise NotImplementedError("being written (issue 2)")
