"""Equality of values and of functions, on top of :mod:`.expr`.

* :func:`close`: two values, at least one irrational, are recomputed with the larger of their working
  precisions and must agree to all but the last 10 digits (at least 30).
* :func:`same_function`: two expressions with variables are the same function when they agree at 8 fixed,
  irregular rational points of both signs (each of the first three variables takes every sign combination;
  magnitudes from 0.2 to 56). A point where one side is defined and the other is not (``\\ln(x^2)`` against
  ``2\\ln x`` at x < 0, ``\\sqrt{x}^2`` against ``x``) makes them different; points where both are undefined are
  skipped; at least three points must be valid. With exact rational arithmetic a polynomial / rational
  identity is decided exactly up to the negligible chance (Schwartz-Zippel) that a nonzero difference vanishes
  at every point; ``\\sqrt{x^2}`` is ``|x|``, not ``x``.
* :func:`equations_proportional`: ``lhs - rhs`` of two equations are nonzero constant multiples of each other.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Optional

import mpmath

from .expr import _eval, free_vars
from .numbers import DomainError, NotNumeric, Num, TooLarge

# ----------------------------------------------------------------------------------------------------------
# irregular rationals spread over two orders of magnitude (step functions such as floor must not look constant
# because every point fell in the same step); signs are added per point and variable by _points
_BASE = (Fraction(37, 13), Fraction(3, 7), Fraction(19, 23), Fraction(613, 11), Fraction(71, 29),
         Fraction(2, 9), Fraction(5, 3), Fraction(331, 7))
N_POINTS = 8
MIN_VALID = 3


def _points(names, count=N_POINTS):
    """Deterministic points: variable j at point k takes +-_BASE[(k + 3j) % 8] + j/101; its sign is bit (j % 3)
    of k, so the first three variables meet every sign combination."""
    names = sorted(names)
    return [{n: (-1 if (k >> (j % 3)) & 1 else 1) * _BASE[(k + 3 * j) % len(_BASE)] + Fraction(j, 101)
             for j, n in enumerate(names)} for k in range(count)]


def refine(n: Num, dps: int) -> Num:
    """n recomputed with at least dps digits (exact values and already precise ones are returned as is)."""
    if n.q is not None or n.inf or n.dps >= dps or n.src is None:
        return n
    try:
        r = _eval(n.src[0], n.src[1], min_dps=dps)
    except (NotNumeric, TooLarge):
        return n
    r.pct, r.deg = n.pct, n.deg
    return r


def close(a: Num, b: Num) -> bool:
    """Equality of two values, at least one irrational: both are computed with the larger of their working
    precisions, and must agree to all but the last 10 of those digits (at least 30)."""
    dps = max(a.dps, b.dps, 40)
    a, b = refine(a, dps), refine(b, dps)
    digits = dps - 10
    with mpmath.workdps(dps + 10):
        x, y = a.mp(), b.mp()
        m = max(abs(x), abs(y), mpmath.mpf(1))
        return abs(x - y) <= m * mpmath.mpf(10) ** -max(digits, 30)


def _vals_equal(a: Num, b: Num) -> bool:
    if a.q is not None and b.q is not None:
        return a.q == b.q
    return close(a, b)


def _value_or_none(s: str, pt) -> Optional[Num]:
    """Value of s at pt; None where s is undefined (raises NotNumeric / TooLarge for what we cannot evaluate)."""
    try:
        return _eval(s, pt)
    except DomainError:
        return None


def same_function(a: str, b: str) -> Optional[bool]:
    """True/False when a and b (with variables) are / are not the same function; None when undecidable here."""
    try:
        names = free_vars(a) | free_vars(b)
    except NotNumeric:
        return None
    if not names or len(names) > 6:
        return None
    valid = 0
    for pt in _points(names):
        try:
            fa, fb = _value_or_none(a, pt), _value_or_none(b, pt)
        except (TooLarge, NotNumeric):
            return None
        if fa is None and fb is None:
            continue
        if (fa is None) != (fb is None):
            return False  # defined on one side only
        if fa.pct != fb.pct or fa.deg != fb.deg or fa.inf or fb.inf:
            return None
        if not _vals_equal(fa, fb):
            return False
        valid += 1
    return True if valid >= MIN_VALID else None


def equations_proportional(a: tuple[str, str], b: tuple[str, str]) -> Optional[bool]:
    """Equations ``a[0] = a[1]`` and ``b[0] = b[1]``: is lhs - rhs of one a nonzero constant times the other?"""
    fa, fb = f"({a[0]})-({a[1]})", f"({b[0]})-({b[1]})"
    try:
        names = free_vars(fa) | free_vars(fb)
    except NotNumeric:
        return None
    if not names or len(names) > 6:
        return None
    ratio = None
    valid = 0
    for pt in _points(names):
        try:
            va, vb = _eval(fa, pt), _eval(fb, pt)
        except TooLarge:
            return None
        except DomainError:
            continue
        except NotNumeric:
            return None
        if va.q is None or vb.q is None:
            return None  # irrational equations: leave them to sympy
        if vb.q == 0 or va.q == 0:
            if vb.q != va.q:
                return False
            continue
        r = va.q / vb.q
        if ratio is None:
            ratio = r
        elif r != ratio:
            return False
        valid += 1
        if valid >= 3:
            return True
    return None
