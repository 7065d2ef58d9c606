r"""Qualifying text around an answer, and the integer parameters it declares.

:func:`split` separates a cleaned answer into its core and what it declares; :mod:`compare` grades the cores.

Dropped (they restate the problem's domain or name a free parameter; they never change the value):

* "only" before or after the answer: ``\text{only } x = 0``, ``5 \text{ (only)}``;
* a universal quantifier at the end: ``\text{ for all } x \in \mathbb{Q}_{>0}``, ``\forall x``,
  ``\text{ for every integer } n \ge 1``, "for any", "for each";
* a parameter declaration at the end: ``\text{ where } n \text{ is an integer}``, ", where k is any integer",
  ``, k \in \mathbb{Z}``, ``(k \in \mathbb{Z})``, "with c a real constant" — the set must be the integers, the
  natural numbers, the reals, the rationals, the complex numbers or "a constant" (optionally positive /
  nonnegative).

Kept (so the answer usually differs from a gold without them): any other condition ("where k is even",
"for x > 0", "if a \ne 0") and a hedge ("5 or 6").

A parameter declared an integer (ℤ, ℕ, "integer", "natural number") is returned in the declared set, for
:func:`family_rename`: two families of solutions in one integer parameter (``n\pi`` and ``x = k\pi, k \in
\mathbb{Z}``) are compared with the answer's parameter renamed to the gold's. Without a declaration only the
conventional letters ``k``, ``n``, ``m`` in an expression with ``\pi`` (a periodic family) count as parameters;
a free variable of any other expression is never renamed (``t^2 + 1`` is not ``x^2 + 1``).
"""
from __future__ import annotations

import re
from typing import Optional

from .bound import free_letters, rename
from .normalize import strip_outer_text

_TEXT = re.compile(r"\\(?:text|mbox|textrm|mathrm|textnormal)\s*\{([^{}]*)\}")
_ONLY_HEAD = re.compile(r"^(?:\\text\{\s*only\s*\}|only\b)\s*", re.I)
_ONLY_TAIL = re.compile(r"\s*(?:\\text\{\s*\(?\s*only\s*\)?\s*\}|\(\s*only\s*\)|\bonly)\s*$", re.I)
# where a trailing qualifier may start (checked at bracket depth 0)
_START = re.compile(r"(?:\s*(?:,|;|\\q?quad)\s*|\s+|(?<=\}))(?=(?:\\text\{\s*|\(\s*)*(?:\\forall|for\s+(?:all|any|every|each)\b|"
                    r"where\b|with\b|[a-zA-Z](?:\s*,\s*[a-zA-Z])*\s*\\in\s*\\mathbb))|(?=\\text\{\s*(?:for\s+(?:all|any|every|each)|where|with)\b)",
                    re.I)
_SETS = (r"(?:(?:an?|any|some|arbitrary|all)\s+)*(?:(?:positive|nonnegative|non-negative)\s+)?"
         r"(?:integers?|natural\s+numbers?|real\s+(?:numbers?|constants?)|reals|rational\s+numbers?|complex\s+numbers?|"
         r"constants?)")
_MATHBB = r"\\in\s*\\mathbb\s*\{?\s*([ZNRQC])\s*\}?(?:\s*(?:\^\s*\{?\s*[+*]\s*\}?|_\s*\{?\s*(?:>|\\ge|\\geq)\s*0\s*\}?))?"
_VARS = r"([a-zA-Z](?:\s*(?:,|and)\s*[a-zA-Z])*)"
_SET = (r"(?:\\mathbb\s*\{?\s*[ZNRQC]\s*\}?(?:\s*(?:\^\s*\{?\s*[+*]\s*\}?|_\s*\{?\s*(?:[+*]|(?:>|<|\\ge|\\geq|\\le|\\leq)\s*-?\d+)\s*\}?))?"
        r"(?:\s*\\setminus\s*\\\{[^{}]*\\\})?)")
# "for all x", "for every integer n \ge 1", "\forall x \in \mathbb{Q}_{>0}", "for all positive integers n": one
# quantified variable list with at most one bound or set, and nothing after it ("for all n even, 6 otherwise" is
# a piecewise answer, not a domain)
_UNIVERSAL = re.compile(
    r"^(?:\\forall|for\s+(?:all|any|every|each))\s*(?P<rest>(?:(?:real|positive|negative|nonnegative|non-negative|natural|"
    r"rational|complex|whole|integer)\s+)*(?:(?:numbers?|integers?|reals?|values?)\s+)?" + _VARS +
    r"(?:\s*(?:(?:\\in|∈)\s*" + _SET + r"|(?:\\ge|\\geq|\\le|\\leq|>|<|\\ne|\\neq)\s*-?\d+))?)\s*$", re.I | re.S)
_DECLARED = re.compile(r"^(?:(?:where|with)\s+)?" + _VARS + r"\s*(?:(?:is|are|be)\s+" + _SETS + r"|" + _MATHBB + r")\s*$",
                       re.I | re.S)
_INT_WORDS = re.compile(r"integer|natural|\\mathbb\s*\{?\s*[ZN]", re.I)
_PARAM_LETTERS = {"k", "n", "m"}
_ANY = re.compile(r"only|for|where|with|\\in(?![a-zA-Z])", re.I)  # no qualifier can start without one of these


def _flat(q: str) -> str:
    """The qualifier as plain text: ``\\text{}`` unwrapped, ``$`` and outer parentheses dropped."""
    for _ in range(3):
        q = _TEXT.sub(r" \1 ", q)
    q = q.replace("$", " ").strip().strip(",;").strip()
    if q.startswith("(") and q.endswith(")"):
        q = q[1:-1]
    return re.sub(r"\s+", " ", q).strip()


def _depth_zero(s: str, i: int) -> bool:
    d = 0
    for c in s[:i]:
        d += (c in "([{") - (c in ")]}")
    return d == 0


def _declared_ints(q: str) -> set[str]:
    """Letters a harmless qualifier declares as integers."""
    if not _INT_WORDS.search(q):
        return set()
    m = _UNIVERSAL.match(q)
    body = re.sub(r"\\[a-zA-Z]+\s*(?:\{[^{}]*\})?", " ", m.group("rest") if m else q)
    return {v for v in re.findall(r"(?<![A-Za-z\\])([a-zA-Z])(?![A-Za-z])", body) if v not in "ei"}


def _harmless(q: str) -> bool:
    """A universal quantifier or a parameter declaration (module docstring)."""
    if _UNIVERSAL.match(q):
        return True
    return bool(_DECLARED.match(q))


def split(s: str) -> tuple[str, frozenset]:
    """(core, letters declared as integers) of a cleaned answer: "only" and a trailing harmless qualifier
    removed (module docstring); the answer itself when there is nothing to remove."""
    if len(s) > 2000 or not _ANY.search(s):
        return s, frozenset()
    core = _ONLY_HEAD.sub("", _ONLY_TAIL.sub("", s)).strip() or s
    ints: set[str] = set()
    for m in _START.finditer(core):
        if m.start() == 0 or not _depth_zero(core, m.start()):
            continue
        q = _flat(core[m.end():])
        if _harmless(q):
            ints = _declared_ints(q)
            core = core[: m.start()].rstrip(" ,;")
            break
    core = _ONLY_TAIL.sub("", core).strip() or s
    return (strip_outer_text(core) if core != s else s), frozenset(ints)


def family_rename(gold: str, pred: str, declared: frozenset) -> Optional[str]:
    """``pred`` with its integer parameter renamed to the gold's (module docstring), None when not applicable."""
    gp, pp = _params(gold, declared), _params(pred, declared)
    if len(gp) != 1 or len(pp) != 1 or gp == pp:
        return None
    (g,), (p,) = gp, pp
    if g in free_letters(pred) or p in free_letters(gold):
        return None
    return rename(pred, {p: g})


def _params(text: str, declared: frozenset) -> set[str]:
    if not declared and "\\pi" not in text:
        return set()
    letters = free_letters(text)
    found = letters & declared
    if not found and "\\pi" in text:
        found = letters & _PARAM_LETTERS
    return found
