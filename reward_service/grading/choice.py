r"""Multiple-choice letters in an answer (:func:`extract_choice`): a letter from ``(B)``, ``B:``, ``\text{(B)}``,
``B.``, "the answer is B"; two letters joined by "or" / "and" / "," (``B or C``, ``\boxed{B, C}``) are a hedge:
:data:`MULTI`. "I" and "A" used as words ("I choose B", "A good choice is C") are not letters.
"""
from __future__ import annotations

import re
from typing import Optional

MULTI = "*"  # extract_choice: several different letters

_CHOICE = re.compile(r"(?<![A-Za-z\\])\(?([A-J])\)?(?![A-Za-z])")
_JOINED_LETTER = re.compile(r"^\)?\s*(?:,|/|&|\bor\b|\band\b|\\text\{\s*(?:or|and)\s*\}|\\(?:lor|vee|land|wedge)\b)\s*"
                            r"(?:\\text(?:bf)?\{)?\(?[A-J]\)?(?![A-Za-z])", re.I)


def _letter_at(t: str, m: re.Match) -> str:
    """The letter matched by m, or MULTI when another letter is joined to it ("B or C", "B, C")."""
    if _JOINED_LETTER.match(t[m.end(1):]):
        return MULTI
    return m.group(1).upper()


def _is_word(t: str, m: re.Match) -> bool:
    """The pronoun "I" or the article "A" ("I choose B", "A good choice is C"), not an option letter."""
    return (m.group(1) in "AI" and t[m.start(1) - 1: m.start(1)] != "(" and t[m.end(1): m.end(1) + 1] != ")"
            and bool(re.match(r"(?:\s+(?!(?:or|and|nor)\b)[a-z]|['’])", t[m.end(1):])))


def _choices(t: str, start: int = 0, end: Optional[int] = None):
    return [m for m in _CHOICE.finditer(t, start, len(t) if end is None else end) if not _is_word(t, m)]


def extract_choice(text: str) -> Optional[str]:
    """A multiple-choice letter from a short text: ``(B)``, ``B:``, ``\\text{(B)}``, ``B.``, "the answer is B";
    :data:`MULTI` for several letters joined by or / and / commas. "I" and "A" used as words do not count."""
    t = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", text)
    t = t.replace("$", " ").strip()
    if re.fullmatch(r"\(?[a-j]\)?", t):
        return t.strip("()").upper()  # a lone lower-case letter in a box
    m = re.match(r"^\**\s*\(?([A-J])\)?(?:[.:,)\s*]|$)", t)
    if m and not _is_word(t, m):
        return _letter_at(t, m)
    anchors = list(re.finditer(r"answer(?:\s+is|\s*:)?|option|choice|choose", t, re.I))
    for a in reversed(anchors):
        found = _choices(t, a.end(), a.end() + 60)
        if found:
            return _letter_at(t, found[0])
    letters = [m.group(1) for m in _choices(t)]
    if letters and len(t) <= 200:
        return letters[-1] if len(set(letters)) == 1 or len(t) > 40 else MULTI
    return None
