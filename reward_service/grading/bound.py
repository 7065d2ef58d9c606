"""Bound variables: names an answer may choose freely.

* The arguments of a function definition: ``f(z) = z`` is the same answer as ``f(x) = x``, and
  ``f(m) = 2m + 1007`` as ``f(n) = 2n + 1007``. :func:`renamed` renames the answer's arguments to the gold's,
  position by position (``f(a, b)`` against ``f(x, y)``); a letter of the answer that would be captured by a
  gold name (``f(z) = x`` against ``f(x) = x``: ``x`` is free there) is first renamed to a fresh letter, so
  ``f(z) = x`` stays a constant function and is not ``f(x) = x``.
* A free variable of a plain expression is *not* bound: ``t^2 + 1`` is not ``x^2 + 1`` (the problem names it).

Letters are renamed as whole tokens: a letter inside a command (``\\sin``), a word, or a subscripted name
(``x_1``) is never touched; ``e`` and ``i`` (constants) are never renamed.
"""
from __future__ import annotations

import re
from typing import Optional

_FUNC_LHS = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?)\s*\(\s*([A-Za-z](?:\s*,\s*[A-Za-z])*)\s*\)\s*$")
_CONSTANTS = {"e", "i"}


def _letter(v: str) -> re.Pattern:
    return re.compile(r"(?<![A-Za-z\\])" + v + r"(?![A-Za-z_'])")


def free_letters(text: str) -> set[str]:
    """Single letters standing as variables in a LaTeX text (not inside commands, words or subscripted names)."""
    bare = re.sub(r"\\[a-zA-Z]+", " ", text)
    return set(re.findall(r"(?<![A-Za-z\\])([A-Za-z])(?![A-Za-z_'])", bare))


def rename(text: str, mapping: dict[str, str]) -> str:
    """Simultaneous renaming of single-letter variables (``{"x": "y", "y": "x"}`` swaps them)."""
    if not mapping:
        return text
    pat = re.compile(r"(?<![A-Za-z\\])(" + "|".join(map(re.escape, mapping)) + r")(?![A-Za-z_'])")
    return pat.sub(lambda m: mapping[m.group(1)], text)


def renamed(gold_lhs: str, pred_lhs: str, pred_rhs: str) -> Optional[str]:
    """``pred_rhs`` with the answer's function arguments renamed to the gold's (module docstring); None when the
    two left sides are not function applications of the same arity or nothing needs renaming."""
    g, p = _FUNC_LHS.match(gold_lhs), _FUNC_LHS.match(pred_lhs)
    if not g or not p:
        return None
    gv = [v.strip() for v in g.group(2).split(",")]
    pv = [v.strip() for v in p.group(2).split(",")]
    if len(gv) != len(pv) or len(set(gv)) != len(gv) or len(set(pv)) != len(pv) or gv == pv:
        return None
    if _CONSTANTS & (set(gv) | set(pv)):
        return None
    mapping = {a: b for a, b in zip(pv, gv) if a != b}
    used = free_letters(pred_rhs) | set(gv) | set(pv)
    fresh = (c for c in "qrsuvwpjklmnoabcdfgh" if c not in used)
    for v in sorted(free_letters(pred_rhs) - set(pv)):
        if v in gv:  # a free letter of the answer that a gold argument would capture
            mapping[v] = next(fresh, v)
    return rename(pred_rhs, mapping)
