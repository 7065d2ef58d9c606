"""Numeric equality of two exact / approximate values (:class:`~.numbers.Num`), used by :mod:`.compare`.

* exact values must be exactly equal (``1/2^99`` != ``1/2^98``); an integer is never matched by a decimal
  approximation (``3`` != ``2.9999``);
* a lone decimal literal with at least two significant digits matches a non-integer exact value it is the
  correct rounding of, at the digits shown: ``0.333`` = 1/3, ``0.33`` = 1/3, ``0.3`` != 1/3, ``0.34`` != 1/3,
  ``1.4142`` = sqrt 2, ``3.14`` = pi, ``3.1415`` != pi (truncated, not rounded); tolerance half a unit of the
  last shown digit, so relative and scaled to the digits. A terminating value with at most 6 significant
  digits must be written in full (``0.13`` != 1/8, ``0.125`` = 1/8);
* two different decimals match only if the more precise one has 8+ significant digits (a printed float) and
  rounds to the other;
* percent: ``X%`` equals ``X/100`` and also the bare number ``X`` (the sign dropped like a unit);
* degrees: ``30°`` equals ``30`` and, against a value written with ``\\pi``, ``\\pi/6``.

Policy (issue 13): a rounded decimal against an exact non-terminating gold (``85.71`` for ``600/7``) is kept
correct: only the correct rounding at the digits shown matches, so it cannot be gamed by hedging, and it is how
such values are written; a truncation (``85.7142``), a wrong last digit (``85.72``) or an integer (``86``) is wrong.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath

from .identity import close, refine
from .numbers import Num

MIN_SIG_APPROX = 2       # a decimal needs this many significant digits to stand for a non-terminating value
PRINTED_FLOAT_SIG = 8    # a decimal with this many digits is a printed float, rounding it is allowed
FULL_DIGITS = 6          # a terminating value with at most this many significant digits must be written in full


def _rounds_to(x, d: Num) -> bool:
    """True if the exact value x, rounded at d's last shown digit, gives d."""
    if d.dec_sig < MIN_SIG_APPROX:
        return False
    half = d.dec_ulp / 2
    if isinstance(x, Fraction):
        return abs(x - d.q) <= half
    if isinstance(x, Num):
        x = refine(x, d.dec_sig + 30).mp()
    with mpmath.workdps(d.dec_sig + 40):
        return abs(x - (mpmath.mpf(d.q.numerator) / d.q.denominator)) <= (mpmath.mpf(half.numerator) / half.denominator) * (1 + mpmath.mpf(10) ** -40)




def _approximable(q: Fraction) -> bool:
    """A rational a decimal may round: not an integer, and either non-terminating (1/3) or with more than
    FULL_DIGITS significant digits when written out (1/1024 = 0.0009765625); 1/8 must be written 0.125."""
    d = q.denominator
    if d == 1:
        return False
    twos, fives = 0, 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    if d != 1:
        return True
    digits = str(abs(q.numerator * 10 ** max(twos, fives) // q.denominator)).strip("0")
    return len(digits) > FULL_DIGITS


def _num_eq(a: Num, b: Num) -> bool:
    if a.inf or b.inf:
        return a.inf == b.inf
    if a.q is not None and b.q is not None:
        if a.q == b.q:
            return True
        da, db = a.dec_ulp is not None, b.dec_ulp is not None
        if da and not db:
            return _approximable(b.q) and _rounds_to(b.q, a)
        if db and not da:
            return _approximable(a.q) and _rounds_to(a.q, b)
        if da and db:
            lo, hi = (a, b) if a.dec_ulp >= b.dec_ulp else (b, a)
            return hi.dec_sig >= PRINTED_FLOAT_SIG and _rounds_to(hi.q, lo)
        return False
    # at least one irrational value
    if a.dec_ulp is not None and b.q is None:
        return _rounds_to(b, a)
    if b.dec_ulp is not None and a.q is None:
        return _rounds_to(a, b)
    if a.q is not None and b.q is not None:
        return False
    return close(a, b)


def _unpct(n: Num) -> Num:
    """The bare number written before a % sign (``28%`` -> 28)."""
    return Num(q=n.q * 100 if n.q is not None else None, x=n.x * 100 if n.x is not None else None,
               dec_ulp=n.dec_ulp * 100 if n.dec_ulp is not None else None, dec_sig=n.dec_sig)


def _deg_to_rad(n: Num) -> Num:
    dps = max(n.dps, 60)
    with mpmath.workdps(dps):
        return Num(x=n.mp() * mpmath.pi / 180, dps=dps)


def num_equal(g: Num, p: Num) -> bool:
    """Numeric equality with the percent and degree rules (see the module docstring)."""
    if g.pct != p.pct:
        pc, other = (g, p) if g.pct else (p, g)
        return _num_eq(pc, other) or _num_eq(_unpct(pc), other)
    if g.deg != p.deg:
        dg, other = (g, p) if g.deg else (p, g)
        if other.has_pi:
            return _num_eq(_deg_to_rad(dg), other)
    return _num_eq(g, p)
