"""Exact numeric values (:class:`Num`) and number literals, without sympy and without ``eval``.

The expression parser that builds these values is :mod:`.expr`. Rules it follows:

* Integers and rationals are exact (``fractions.Fraction``): ``\\frac{1}{2^{99}}`` and ``\\frac{1}{2^{98}}``
  differ. Integers are never routed through float.
* Decimals are exact rationals (``0.1`` = 1/10); a *lone* decimal literal (optionally signed, with ``%``,
  ``e``-notation or ``\\times 10^{k}``) also records the digits shown, so :mod:`compare` can treat it as an
  approximation of a non-terminating value.
* Repeating decimals: ``0.\\overline{3}`` = 1/3, ``0.1\\overline{6}`` = 1/6, ``0.(3)`` = 1/3 (the period in
  parentheses); ``0.333\\ldots`` is read as the decimal ``0.333`` (an approximation).
* Mixed numbers: an integer written directly before a proper fraction of integers is a sum
  (``2\\frac12`` = 5/2, ``-3\\frac{1}{2}`` = -7/2, ``7 3/4`` = 31/4); otherwise juxtaposition multiplies
  (``3\\sqrt{2}``, ``3.1 \\frac{1}{2}`` = 1.55).
* ``%`` at the end divides by 100 and sets ``pct``; a degree mark sets ``deg``.
* Irrational values (``\\sqrt{2}``, ``\\pi``, non-integer powers) are evaluated with mpmath at a precision
  chosen from the size of the intermediates (see :func:`evaluate`), so cancellation cannot fake equality.
* Guards (raise :class:`TooLarge`): an exact result above ~200k bits, an integer exponent making such a
  result, a factorial above 2000, an irrational value with magnitude above 10^5000.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import mpmath

MAX_BITS = 200_000          # largest exact numerator/denominator we build (about 60k digits)
MAX_DIGITS_LITERAL = 4000   # longer digit strings are compared as strings (int() refuses > 4300 digits)
MAX_FACTORIAL = 2000
MAX_MAG10 = 5000            # largest |log10| of an irrational intermediate


class TooLarge(Exception):
    """The expression would need an unreasonably large number to evaluate."""


class NotNumeric(Exception):
    """The text is not an expression the exact parser understands."""


class DomainError(NotNumeric):
    """The expression is undefined at this point (division by zero, log of a negative...)."""


@dataclass
class Num:
    q: Optional[Fraction] = None       # exact rational value, when known
    x: Optional[mpmath.mpf] = None     # high-precision value when q is None (irrational)
    dec_ulp: Optional[Fraction] = None  # lone decimal literal: unit of its last shown digit
    dec_sig: int = 0                   # lone decimal literal: significant digits shown
    pct: bool = False
    deg: bool = False
    inf: int = 0                       # +1 / -1 for +-infinity
    has_pi: bool = False
    dps: int = 0                       # decimal digits x was computed with (0: exact)
    src: Optional[tuple] = None        # (text, env) to recompute x with more digits

    def mp(self) -> mpmath.mpf:
        if self.inf:
            return mpmath.inf if self.inf > 0 else -mpmath.inf
        if self.q is not None:
            return mpmath.mpf(self.q.numerator) / self.q.denominator
        return self.x

    @property
    def exact(self) -> bool:
        return self.q is not None


def _check_frac(q: Fraction) -> Fraction:
    if q.numerator.bit_length() > MAX_BITS or q.denominator.bit_length() > MAX_BITS:
        raise TooLarge("number too large")
    return q


def _parse_repeating(tok: str) -> Fraction:
    m = re.match(r"(\d*)\.(\d*)(?:\\(?:overline|bar|dot)\s*\{?\s*(\d+)\s*\}?|\((\d+)\))", tok)
    ip, nonrep, rep = m.group(1) or "0", m.group(2), m.group(3) or m.group(4)
    # x = ip.nonrep(rep)...  =  ip + (nonrep rep - nonrep) / (10^len(nonrep) * (10^len(rep) - 1))
    a = int(nonrep + rep) - (int(nonrep) if nonrep else 0)
    return Fraction(int(ip)) + Fraction(a, 10 ** len(nonrep) * (10 ** len(rep) - 1))


def _decimal(tok: str) -> tuple[Fraction, Optional[Fraction], int]:
    """Exact value of a number token, plus (ulp, significant digits) when it has a decimal point/exponent."""
    mant, _, ex = tok.lower().partition("e")
    e = int(ex) if ex else 0
    if abs(e) > 5000:
        raise TooLarge("exponent too large")
    if "." in mant:
        ip, fp = mant.split(".")
    else:
        ip, fp = mant, ""
    digits = (ip + fp).lstrip("0")
    if len(ip) + len(fp) > MAX_DIGITS_LITERAL:
        raise TooLarge("literal too long")
    val = Fraction(int(ip + fp or "0"), 10 ** len(fp))
    if e:
        val = val * Fraction(10) ** e
    if "." in mant or ex:
        ulp = Fraction(10) ** (e - len(fp))
        sig = len(digits) if digits else 1
        return val, ulp, sig
    return val, None, 0


def _exact_root(q: Fraction, k: int) -> Optional[Fraction]:
    """The exact k-th root of a non-negative rational, or None."""
    if q < 0:
        return None
    if k == 1:
        return q
    n, d = q.numerator, q.denominator
    rn, rd = _iroot(n, k), _iroot(d, k)
    if rn is not None and rd is not None:
        return Fraction(rn, rd)
    return None


def _iroot(n: int, k: int) -> Optional[int]:
    if n < 2:
        return n
    if n.bit_length() > MAX_BITS:
        raise TooLarge("root of huge number")
    if k == 2:
        r = math.isqrt(n)
        return r if r * r == n else None
    r = int(round(n ** (1.0 / k))) if n.bit_length() < 1000 else None
    if r is None:
        lo, hi = 0, 1 << (n.bit_length() // k + 1)
        while lo < hi:
            mid = (lo + hi) // 2
            if mid ** k < n:
                lo = mid + 1
            else:
                hi = mid
        r = lo
    for c in (r - 1, r, r + 1):
        if c >= 0 and c ** k == n:
            return c
    return None
