"""Exact evaluation of numeric answers, without sympy and without ``eval``.

:func:`evaluate` parses a cleaned answer with its own tokenizer and recursive-descent parser and returns a
:class:`Num`, or ``None`` when the text is not a closed numeric expression (letters, functions...).

Rules:

* Integers and rationals are exact (``fractions.Fraction``): ``\\frac{1}{2^{99}}`` and ``\\frac{1}{2^{98}}``
  differ. Integers are never routed through float.
* Decimals are exact rationals (``0.1`` = 1/10); a *lone* decimal literal (optionally signed, with ``%``,
  ``e``-notation or ``\\times 10^{k}``) also records the digits shown, so :mod:`compare` can treat it as an
  approximation of a non-terminating value.
* Repeating decimals: ``0.\\overline{3}`` = 1/3, ``0.1\\overline{6}`` = 1/6.
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
    """The text is not a closed numeric expression this parser understands."""


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

    def mp(self) -> mpmath.mpf:
        if self.inf:
            return mpmath.inf if self.inf > 0 else -mpmath.inf
        if self.q is not None:
            return mpmath.mpf(self.q.numerator) / self.q.denominator
        return self.x

    @property
    def exact(self) -> bool:
        return self.q is not None


_TOKEN = re.compile(
    r"""
    (?P<rep>\d*\.\d*\\(?:overline|bar|dot)\s*\{?\s*\d+\s*\}?)      # repeating decimal
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+(?![a-zA-Z]))?)      # number, e-notation
  | (?P<cmd>\\[a-zA-Z]+)
  | (?P<op>\*\*|[-+*/^!(){}\[\]%°])
  | (?P<sp>\s+)
  | (?P<bad>.)
    """,
    re.VERBOSE,
)

_MULT_CMDS = {"\\cdot", "\\times", "\\ast"}
_DIV_CMDS = {"\\div"}
_IGNORED_CMDS = {"\\left", "\\right"}


def _tokenize(s: str) -> list[tuple[str, str, bool]]:
    toks = []
    space = False
    for m in _TOKEN.finditer(s):
        kind = m.lastgroup
        val = m.group()
        if kind == "sp":
            space = True
            continue
        if kind == "bad":
            raise NotNumeric(val)
        if kind == "cmd" and val in _IGNORED_CMDS:
            continue
        toks.append((kind, val, space))
        space = False
    return toks


def _check_frac(q: Fraction) -> Fraction:
    if q.numerator.bit_length() > MAX_BITS or q.denominator.bit_length() > MAX_BITS:
        raise TooLarge("number too large")
    return q


def _parse_repeating(tok: str) -> Fraction:
    m = re.match(r"(\d*)\.(\d*)\\(?:overline|bar|dot)\s*\{?\s*(\d+)\s*\}?", tok)
    ip, nonrep, rep = m.group(1) or "0", m.group(2), m.group(3)
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


class _Parser:
    def __init__(self, toks):
        self.t = toks
        self.i = 0
        self.max_mag = 0.0
        self.has_pi = False

    # -- helpers ---------------------------------------------------------------------------------------
    def peek(self, k=0):
        j = self.i + k
        return self.t[j] if j < len(self.t) else (None, None, False)

    def take(self):
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect(self, val):
        kind, v, _ = self.peek()
        if v != val:
            raise NotNumeric(f"expected {val}")
        self.i += 1

    # -- arithmetic on Num -----------------------------------------------------------------------------
    def _note(self, x):
        if x is not None and mpmath.isfinite(x) and x != 0:
            mag = abs(float(mpmath.log10(abs(x))))
            if mag > MAX_MAG10:
                raise TooLarge("magnitude too large")
            self.max_mag = max(self.max_mag, mag)

    def _mk(self, q=None, x=None) -> Num:
        if q is not None:
            _check_frac(q)
            if q:
                n, d = q.numerator, q.denominator
                mag = abs((n.bit_length() - d.bit_length()) * 0.30103)
                self.max_mag = max(self.max_mag, mag)
            return Num(q=q)
        self._note(x)
        return Num(x=x)

    def add(self, a: Num, b: Num, sign=1) -> Num:
        if a.inf or b.inf:
            raise NotNumeric("infinity arithmetic")
        if a.q is not None and b.q is not None:
            return self._mk(q=a.q + sign * b.q)
        return self._mk(x=a.mp() + sign * b.mp())

    def mul(self, a: Num, b: Num) -> Num:
        if a.inf or b.inf:
            raise NotNumeric("infinity arithmetic")
        if a.q is not None and b.q is not None:
            return self._mk(q=a.q * b.q)
        return self._mk(x=a.mp() * b.mp())

    def div(self, a: Num, b: Num) -> Num:
        if a.inf or b.inf:
            raise NotNumeric("infinity arithmetic")
        if b.q is not None:
            if b.q == 0:
                raise NotNumeric("division by zero")
            if a.q is not None:
                return self._mk(q=a.q / b.q)
        bx = b.mp()
        if bx == 0:
            raise NotNumeric("division by zero")
        return self._mk(x=a.mp() / bx)

    def power(self, a: Num, b: Num) -> Num:
        if a.inf or b.inf:
            raise NotNumeric("infinity arithmetic")
        if b.q is not None and b.q.denominator == 1:
            e = b.q.numerator
            if a.q is not None:
                base = a.q
                if base == 0:
                    if e < 0:
                        raise NotNumeric("division by zero")
                    return self._mk(q=Fraction(1 if e == 0 else 0))
                if base == 1 or base == -1:
                    return self._mk(q=Fraction(1 if (base == 1 or e % 2 == 0) else -1))
                bits = max(base.numerator.bit_length(), base.denominator.bit_length())
                if abs(e) * bits > MAX_BITS:
                    raise TooLarge("power too large")
                return self._mk(q=base ** e)
            if abs(e) > 100_000:
                raise TooLarge("power too large")
            return self._mk(x=mpmath.power(a.mp(), e))
        if b.q is not None and a.q is not None and a.q > 0:
            # rational exponent p/r: exact when the r-th root is exact
            p, r = b.q.numerator, b.q.denominator
            if r <= 64:
                root = _exact_root(a.q, r)
                if root is not None:
                    return self.power(Num(q=root), Num(q=Fraction(p)))
        ax, bx = a.mp(), b.mp()
        if ax < 0:
            raise NotNumeric("negative base with non-integer exponent")
        if ax > 0 and abs(float(bx) * float(mpmath.log10(ax))) > MAX_MAG10:
            raise TooLarge("power too large")
        return self._mk(x=mpmath.power(ax, bx))

    def sqrt(self, a: Num, n: Num | None = None) -> Num:
        k = 2
        if n is not None:
            if n.q is None or n.q.denominator != 1 or not (1 <= n.q.numerator <= 64):
                raise NotNumeric("root index")
            k = n.q.numerator
        if a.q is not None:
            if a.q < 0 and k % 2 == 0:
                raise NotNumeric("sqrt of negative")
            root = _exact_root(abs(a.q), k)
            if root is not None:
                return self._mk(q=root if a.q >= 0 else -root)
            x = mpmath.root(mpmath.mpf(abs(a.q.numerator)) / a.q.denominator, k)
            return self._mk(x=x if a.q >= 0 else -x)
        ax = a.mp()
        if ax < 0:
            if k % 2 == 0:
                raise NotNumeric("sqrt of negative")
            return self._mk(x=-mpmath.root(-ax, k))
        return self._mk(x=mpmath.root(ax, k))

    # -- grammar ---------------------------------------------------------------------------------------
    def parse(self) -> Num:
        v = self.expr()
        if self.i != len(self.t):
            raise NotNumeric("trailing tokens")
        return v

    def expr(self) -> Num:
        v = self.term()
        while True:
            kind, tok, _ = self.peek()
            if tok == "+":
                self.i += 1
                v = self.add(v, self.term())
            elif tok == "-":
                self.i += 1
                v = self.add(v, self.term(), -1)
            else:
                return v

    def _starts_atom(self) -> bool:
        kind, tok, _ = self.peek()
        if kind in ("num", "rep"):
            return True
        if tok in ("(", "{", "["):
            return True
        return kind == "cmd" and tok in ("\\frac", "\\sqrt", "\\pi", "\\binom")

    def term(self) -> Num:
        v = self.unary()
        while True:
            kind, tok, _ = self.peek()
            if tok == "*" or tok in _MULT_CMDS:
                self.i += 1
                v = self.mul(v, self.unary())
            elif tok == "/" or tok in _DIV_CMDS:
                self.i += 1
                v = self.div(v, self.unary())
            elif self._starts_atom():
                v = self.mul(v, self.power_())
            else:
                return v

    def unary(self) -> Num:
        kind, tok, _ = self.peek()
        if tok == "-":
            self.i += 1
            v = self.unary()
            if v.inf:
                return Num(inf=-v.inf)
            return Num(q=-v.q) if v.q is not None else Num(x=-v.x, has_pi=v.has_pi)
        if tok == "+":
            self.i += 1
            return self.unary()
        return self.power_()

    def power_(self) -> Num:
        base = self.postfix()
        kind, tok, _ = self.peek()
        if tok in ("^", "**"):
            self.i += 1
            ex = self.exponent()
            return self.power(base, ex)
        return base

    def exponent(self) -> Num:
        kind, tok, _ = self.peek()
        if tok == "{":
            return self.postfix()
        if tok == "-" or tok == "+":
            self.i += 1
            v = self.exponent()
            return Num(q=-v.q) if (tok == "-" and v.q is not None) else (Num(x=-v.x) if tok == "-" else v)
        return self.postfix()

    def postfix(self) -> Num:
        v = self.atom()
        while self.peek()[1] == "!":
            self.i += 1
            if v.q is None or v.q.denominator != 1 or v.q < 0:
                raise NotNumeric("factorial of non-integer")
            n = v.q.numerator
            if n > MAX_FACTORIAL:
                raise TooLarge("factorial too large")
            v = self._mk(q=Fraction(math.factorial(n)))
        return v

    def group(self) -> Num:
        """A braced argument ``{...}`` or a single-character shorthand (``\\frac12``, ``\\sqrt3``)."""
        kind, tok, _ = self.peek()
        if tok == "{":
            self.i += 1
            v = self.expr()
            self.expect("}")
            return v
        if kind == "num":
            self.i += 1
            # shorthand takes one digit: \frac12 -> 1, 2
            if len(tok) > 1 and tok.isdigit():
                self.t.insert(self.i, ("num", tok[1:], False))
                tok = tok[0]
            return self._mk(q=_decimal(tok)[0])
        if kind == "cmd" and tok == "\\pi":
            return self.atom()
        raise NotNumeric("group")

    def atom(self) -> Num:
        kind, tok, _ = self.peek()
        if kind is None:
            raise NotNumeric("unexpected end")
        if kind == "num":
            self.i += 1
            val, ulp, sig = _decimal(tok)
            n = self._mk(q=val)
            # mixed number: integer directly followed by a proper fraction of integers
            nk, nt, _ = self.peek()
            if ulp is None and nt == "\\frac":
                save = self.i
                try:
                    self.i += 1
                    a = self.group()
                    b = self.group()
                    if (a.q is not None and b.q is not None and a.q.denominator == 1 and b.q.denominator == 1
                            and 0 <= a.q < b.q and self.peek()[1] not in ("^",)):
                        return self._mk(q=val + a.q / b.q)
                except NotNumeric:
                    pass
                self.i = save
            return n
        if kind == "rep":
            self.i += 1
            return self._mk(q=_parse_repeating(tok))
        if tok in ("(", "{", "["):
            close = {"(": ")", "{": "}", "[": "]"}[tok]
            self.i += 1
            v = self.expr()
            self.expect(close)
            return v
        if kind == "cmd":
            self.i += 1
            if tok == "\\frac":
                a = self.group()
                b = self.group()
                return self.div(a, b)
            if tok == "\\sqrt":
                n = None
                if self.peek()[1] == "[":
                    self.i += 1
                    n = self.expr()
                    self.expect("]")
                return self.sqrt(self.group(), n)
            if tok == "\\pi":
                self.has_pi = True
                v = self._mk(x=+mpmath.pi)
                v.has_pi = True
                return v
            if tok == "\\binom":
                a, b = self.group(), self.group()
                if a.q is None or b.q is None or a.q.denominator != 1 or b.q.denominator != 1:
                    raise NotNumeric("binom")
                n, k = a.q.numerator, b.q.numerator
                if n > 100_000 or n < 0:
                    raise TooLarge("binomial too large")
                return self._mk(q=Fraction(math.comb(n, k) if 0 <= k <= n else 0))
            if tok == "\\infty":
                return Num(inf=1)
        raise NotNumeric(f"unexpected {tok}")


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


_MIXED_PLAIN = re.compile(r"^([+-]?)\s*(\d+)\s+(\d+)\s*/\s*(\d+)$")
_SCI = re.compile(r"^([+-]?\s*\d+(?:\.\d*)?)\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*([+-]?\s*\d+)\s*\}?$")
_LONE_DEC = re.compile(r"^[+-]?\s*(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_LONG_INT = re.compile(r"^[+-]?\d+$")


def evaluate(s: str) -> Optional[Num]:
    """Evaluate a cleaned numeric answer exactly; None when it is not purely numeric.

    Raises :class:`TooLarge` for inputs that would need huge numbers.
    """
    s = s.strip()
    if not s:
        return None
    pct = deg = False
    if s.endswith("%"):
        pct, s = True, s[:-1].rstrip()
    elif s.endswith("°"):
        deg, s = True, s[:-1].rstrip()
    if not s:
        return None
    m = _MIXED_PLAIN.match(s)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        num, den = int(m.group(3)), int(m.group(4))
        if den == 0 or len(s) > 60:
            return None
        v = Num(q=sign * (int(m.group(2)) + Fraction(num, den)))
        v.pct, v.deg = pct, deg
        return _finish(v)
    m = _SCI.match(s)
    if m:
        mant = m.group(1).replace(" ", "")
        e = int(m.group(2).replace(" ", ""))
        s = f"{mant}e{e}"
    if _LONG_INT.match(s) and len(s) > MAX_DIGITS_LITERAL:
        raise TooLarge("integer literal too long")
    try:
        toks = _tokenize(s)
    except NotNumeric:
        return None
    if not toks:
        return None
    p = _Parser(toks)
    try:
        v = p.parse()
    except (NotNumeric, ZeroDivisionError, ValueError, OverflowError):
        return None
    if v.q is None and not v.inf:
        # irrational: re-evaluate with enough precision for the magnitudes seen
        dps = int(p.max_mag) + 40
        if dps > 6000:
            raise TooLarge("needs too much precision")
        with mpmath.workdps(dps):
            p2 = _Parser(_tokenize(s))
            try:
                v = p2.parse()
            except (NotNumeric, ZeroDivisionError, ValueError, OverflowError):
                return None
        v.has_pi = p2.has_pi
        v.dps = dps  # type: ignore[attr-defined]
    if _LONE_DEC.match(s):
        _, ulp, sig = _decimal(s.replace(" ", "").lstrip("+-"))
        if ulp is not None:
            v.dec_ulp, v.dec_sig = ulp, sig
    v.pct, v.deg = pct, deg
    return _finish(v)


def _finish(v: Num) -> Num:
    if v.pct and v.q is not None:
        v.q = v.q / 100
        if v.dec_ulp is not None:
            v.dec_ulp = v.dec_ulp / 100
    elif v.pct and v.x is not None:
        v.x = v.x / 100
    return v
