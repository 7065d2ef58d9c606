"""Arithmetic on :class:`~.numbers.Num` values for the expression parser (:mod:`.expr`).

* Rationals stay exact (``fractions.Fraction``); a result above ``MAX_BITS`` bits raises :class:`TooLarge`.
* Anything irrational is an mpmath value; :meth:`Arith._mk` records the largest magnitude seen, so that
  :func:`.expr._eval` can recompute with enough digits that cancellation cannot fake equality.
* Powers: integer exponents exactly; a rational exponent ``p/q`` of a perfect power exactly (``8^{2/3}`` = 4);
  a negative base with an odd-denominator exponent is the real root (``(-8)^{1/3}`` = -2); a negative base with
  another non-integer exponent is undefined (:class:`DomainError`), as are even roots of negatives, logs of
  non-positive numbers, ``arcsin``/``arccos`` outside [-1, 1] and division by zero.
* Floor / ceiling of exact values are exact; of irrational values via mpmath.
"""
from __future__ import annotations

import math
from fractions import Fraction

import mpmath

from .numbers import MAX_BITS, MAX_MAG10, DomainError, NotNumeric, Num, TooLarge, _check_frac, _exact_root

FUNCS = {"sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "sec": mpmath.sec, "csc": mpmath.csc,
          "cot": mpmath.cot, "arcsin": mpmath.asin, "arccos": mpmath.acos, "arctan": mpmath.atan,
          "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh, "ln": mpmath.ln, "log": mpmath.ln,
          "exp": mpmath.exp}


class Arith:
    """Arithmetic with magnitude tracking (mixed into the parser)."""

    max_mag = 0.0

    def _mk(self, q=None, x=None) -> Num:
        if q is not None:
            _check_frac(q)
            if q:
                mag = abs((q.numerator.bit_length() - q.denominator.bit_length()) * 0.30103)
                self.max_mag = max(self.max_mag, mag)
            return Num(q=q)
        if not mpmath.isfinite(x):
            raise DomainError("not finite")
        if x != 0:
            mag = abs(float(mpmath.log10(abs(x))))
            if mag > MAX_MAG10:
                raise TooLarge("magnitude too large")
            self.max_mag = max(self.max_mag, mag)
        return Num(x=x)

    @staticmethod
    def _noinf(*ns):
        if any(n.inf for n in ns):
            raise NotNumeric("infinity arithmetic")

    def add(self, a, b, sign=1):
        self._noinf(a, b)
        if a.q is not None and b.q is not None:
            return self._mk(q=a.q + sign * b.q)
        return self._mk(x=a.mp() + sign * b.mp())

    def mul(self, a, b):
        self._noinf(a, b)
        if a.q is not None and b.q is not None:
            return self._mk(q=a.q * b.q)
        return self._mk(x=a.mp() * b.mp())

    def div(self, a, b):
        self._noinf(a, b)
        if b.q is not None and b.q == 0:
            raise DomainError("division by zero")
        if a.q is not None and b.q is not None:
            return self._mk(q=a.q / b.q)
        bx = b.mp()
        if bx == 0:
            raise DomainError("division by zero")
        return self._mk(x=a.mp() / bx)

    def power(self, a, b):
        self._noinf(a, b)
        if b.q is not None and b.q.denominator == 1:
            e = b.q.numerator
            if a.q is not None:
                base = a.q
                if base == 0:
                    if e < 0:
                        raise DomainError("division by zero")
                    return self._mk(q=Fraction(1 if e == 0 else 0))
                if base in (1, -1):
                    return self._mk(q=Fraction(1 if (base == 1 or e % 2 == 0) else -1))
                bits = max(base.numerator.bit_length(), base.denominator.bit_length())
                if abs(e) * bits > MAX_BITS:
                    raise TooLarge("power too large")
                return self._mk(q=base ** e)
            if abs(e) > 100_000:
                raise TooLarge("power too large")
            return self._mk(x=mpmath.power(a.mp(), e))
        if b.q is not None and b.q.denominator % 2 == 1 and not a.inf:
            ax = a.mp()
            if isinstance(ax, mpmath.mpf) and ax < 0:  # (-8)^{1/3} = -2: real odd root
                pos = self.power(Num(q=-a.q) if a.q is not None else self._mk(x=-ax), b)
                return pos if b.q.numerator % 2 == 0 else (Num(q=-pos.q) if pos.q is not None else self._mk(x=-pos.x))
        if b.q is not None and a.q is not None and a.q > 0 and b.q.denominator <= 64:
            root = _exact_root(a.q, b.q.denominator)
            if root is not None:
                return self.power(Num(q=root), Num(q=Fraction(b.q.numerator)))
        ax, bx = a.mp(), b.mp()
        if isinstance(ax, mpmath.mpf) and ax < 0:
            raise DomainError("negative base with non-integer exponent")
        if ax == 0:
            return self._mk(q=Fraction(0))
        if abs(float(abs(bx)) * float(mpmath.log10(abs(ax)))) > MAX_MAG10:
            raise TooLarge("power too large")
        return self._mk(x=mpmath.power(ax, bx))

    def mod(self, a, b):
        """``a \\bmod b`` = a - b * floor(a / b) (the sign of b, as in Python)."""
        self._noinf(a, b)
        if b.q is not None and b.q == 0:
            raise DomainError("modulo zero")
        if a.q is not None and b.q is not None:
            return self._mk(q=a.q % b.q)
        ax, bx = a.mp(), b.mp()
        if not (isinstance(ax, mpmath.mpf) and isinstance(bx, mpmath.mpf)) or bx == 0:
            raise DomainError("modulo")
        return self._mk(x=ax - bx * mpmath.floor(ax / bx))

    def root(self, a, n=None):
        k = 2
        if n is not None:
            if n.q is None or n.q.denominator != 1 or not (1 <= n.q.numerator <= 64):
                raise NotNumeric("root index")
            k = n.q.numerator
        if a.q is not None:
            if a.q < 0 and k % 2 == 0:
                raise DomainError("even root of a negative number")
            r = _exact_root(abs(a.q), k)
            if r is not None:
                return self._mk(q=r if a.q >= 0 else -r)
            x = mpmath.root(mpmath.mpf(abs(a.q.numerator)) / a.q.denominator, k)
            return self._mk(x=x if a.q >= 0 else -x)
        ax = a.mp()
        if not isinstance(ax, mpmath.mpf):
            raise NotNumeric("complex root")
        if ax < 0:
            if k % 2 == 0:
                raise DomainError("even root of a negative number")
            return self._mk(x=-mpmath.root(-ax, k))
        return self._mk(x=mpmath.root(ax, k))

    def func(self, name, a):
        self._noinf(a)
        x = a.mp()
        if name in ("ln", "log") and (not isinstance(x, mpmath.mpf) or x <= 0):
            raise DomainError("log of a non-positive number")
        if name in ("arcsin", "arccos") and (not isinstance(x, mpmath.mpf) or abs(x) > 1):
            raise DomainError("arcsin/arccos out of range")
        try:
            return self._mk(x=FUNCS[name](x))
        except (ValueError, ZeroDivisionError):
            raise DomainError(name)

    def _abs(self, v) -> Num:
        if v.inf:
            return Num(inf=1)
        if v.q is not None:
            return Num(q=abs(v.q))
        return self._mk(x=abs(v.x))

    def _round(self, v, name) -> Num:
        if v.q is not None:
            return Num(q=Fraction(math.floor(v.q) if name == "lfloor" else math.ceil(v.q)))
        if not isinstance(v.x, mpmath.mpf):
            raise NotNumeric("floor of a complex number")
        return Num(q=Fraction(int(mpmath.floor(v.x) if name == "lfloor" else mpmath.ceil(v.x))))
