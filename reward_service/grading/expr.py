"""Our own parser for answers: numbers, arithmetic, roots, pi, e, i, a few functions, and variables.

No ``eval``: a tokenizer and a recursive-descent parser compute a :class:`~.numbers.Num` directly.

* :func:`evaluate` gives the exact value of a closed expression (no variables) or None.
* :func:`_eval` also evaluates with variables bound to values (used by :mod:`.identity`).

Grammar (precedence low to high): ``+ -``; ``* / \\cdot \\times \\div \\bmod`` and juxtaposition (``2x``,
``3\\sqrt{2}``, ``ab`` = a*b; but two number literals side by side, ``1 2``, are not a product); unary sign; ``^`` (right associative, ``2^10`` = 1024); ``!``; atoms: numbers,
``\\frac``, ``\\sqrt[n]``, ``\\binom``, ``( ) { } [ ]``, ``|x|``, ``\\lfloor\\rfloor``, ``\\lceil\\rceil``, ``\\pi``,
``e`` (Euler's number), ``i`` / ``I`` (imaginary unit), ``\\infty``, variables (one letter with an optional subscript,
or a Greek letter; ``f(0)``, ``P(A)``, a letter applied to one number or letter, is one opaque quantity, not a
product), functions ``\\sin \\cos \\tan \\sec \\csc \\cot \\arcsin \\arccos \\arctan \\sinh \\cosh
\\tanh \\ln \\log \\exp`` with a parenthesised / braced argument or a single number / variable. Anything else
(``\\sum``, ``\\int``, sets...) raises NotNumeric and is left to the symbolic path.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Optional

import mpmath

from .normalize import short_cache
from .arith import FUNCS as _FUNCS
from .arith import Arith
from .numbers import (MAX_DIGITS_LITERAL, MAX_FACTORIAL, DomainError, NotNumeric, Num, TooLarge, _decimal,
                      _parse_repeating)

_GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi rho sigma "
          "tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi Psi Omega").split()
_TOKEN = re.compile(
    r"""
    (?P<rep>\d*\.\d*(?:\\(?:overline|bar|dot)\s*\{?\s*\d+\s*\}?|\(\d+\)))  # repeating decimal
  | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+(?![a-zA-Z]))?)      # number, e-notation
  | (?P<var>[a-zA-Z](?:_\{[a-zA-Z0-9]+\}|_[a-zA-Z0-9])?'*)          # variable (one letter, optional subscript)
  | (?P<cmd>\\[a-zA-Z]+)
  | (?P<op>\*\*|[-+*/^!(){}\[\]|_°])
  | (?P<sp>\s+)
  | (?P<bad>.)
    """,
    re.VERBOSE,
)
_MULT = {"\\cdot", "\\times", "\\ast"}
_DIV = {"\\div"}
_ATOM_CMDS = {"\\frac", "\\sqrt", "\\pi", "\\binom", "\\lfloor", "\\lceil", "\\infty"} | {"\\" + g for g in _GREEK} \
    | {"\\" + f for f in _FUNCS}
_END = (None, None, False)
_SUB_BRACE = re.compile(r"_\{(\w+)\}")


@short_cache(8192)
def _tokens(s: str) -> tuple:
    toks = []
    space = False
    for m in _TOKEN.finditer(s):
        kind, val = m.lastgroup, m.group()
        if kind == "sp":
            space = True
            continue
        if kind == "bad":
            raise NotNumeric(val)
        if kind == "cmd" and val in ("\\left", "\\right"):
            continue
        if kind == "var":
            val = _SUB_BRACE.sub(r"_\1", val)  # x_{1} and x_1 are the same variable
        toks.append((kind, val, space))
        space = False
    return tuple(_merge_applications(toks))


def _merge_applications(toks: list) -> list:
    """``f(0)``, ``I(0)``, ``P(A)``: a letter applied to a single number or letter is one opaque quantity
    (not ``f`` times 0); a lone ``I`` is sympy's imaginary unit, as latex2sympy2-extended reads it."""
    out = []
    i = 0
    while i < len(toks):
        kind, val, sp = toks[i]
        if (kind == "var" and i + 3 < len(toks) + 0 and i + 3 <= len(toks) - 1 and toks[i + 1][1] == "("
                and toks[i + 2][0] in ("num", "var") and toks[i + 3][1] == ")" and not toks[i + 1][2]):
            out.append(("var", f"{val}({toks[i + 2][1]})", sp))
            i += 4
            continue
        if kind == "var" and val == "I":
            val = "i"
        out.append((kind, val, sp))
        i += 1
    return out


def free_vars(s: str) -> frozenset:
    """Variable names in s (``e`` and ``i`` are constants); raises NotNumeric for unsupported text."""
    out = set()
    for kind, val, _ in _tokens(s):
        if kind == "var" and val not in ("e", "i"):
            out.add(val)
        elif kind == "cmd" and val[1:] in _GREEK:
            out.add(val)
    return frozenset(out)


class _Parser(Arith):
    def __init__(self, toks, env=None):
        self.t = list(toks)
        self.i = 0
        self.env = env
        self.max_mag = 0.0
        self.max_digits = 0
        self.has_pi = False

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else _END

    def expect(self, val):
        if self.peek()[1] != val:
            raise NotNumeric(f"expected {val}")
        self.i += 1

    # -- grammar ---------------------------------------------------------------------------------------
    def parse(self) -> Num:
        v = self.expr()
        if self.i != len(self.t):
            raise NotNumeric("trailing tokens")
        return v

    def expr(self, stop=None) -> Num:
        v = self.term(stop)
        while True:
            tok = self.peek()[1]
            if tok == "+":
                self.i += 1
                v = self.add(v, self.term(stop))
            elif tok == "-":
                self.i += 1
                v = self.add(v, self.term(stop), -1)
            else:
                return v

    def _starts_atom(self, stop) -> bool:
        kind, tok, _ = self.peek()
        if kind in ("num", "rep", "var"):
            return True
        if tok in ("(", "{", "["):
            return True
        if tok == "|" and stop != "|":
            return True
        return kind == "cmd" and tok in _ATOM_CMDS

    def term(self, stop=None) -> Num:
        start = self.i
        v = self.unary(stop)
        while True:
            tok = self.peek()[1]
            if tok == "*" or tok in _MULT:
                self.i += 1
                start = self.i
                v = self.mul(v, self.unary(stop))
            elif tok == "/" or tok in _DIV:
                self.i += 1
                start = self.i
                v = self.div(v, self.unary(stop))
            elif tok in ("\\bmod", "\\mod"):
                self.i += 1
                start = self.i
                v = self.mod(v, self.unary(stop))
            elif self._starts_atom(stop):
                if self._juxtaposed_numbers(start):
                    raise NotNumeric("two numbers side by side")  # "1 2" is not 2
                start = self.i
                v = self.mul(v, self.power_(stop))
            else:
                return v

    def _juxtaposed_numbers(self, start: int) -> bool:
        """The factor that ends here is a lone number literal and another number literal follows (not a mixed
        number ``3 1\\frac12``)."""
        toks = [t for t in self.t[start:self.i] if t[1] not in ("-", "+")]
        if len(toks) != 1 or toks[0][0] != "num" or self.peek()[0] != "num":
            return False
        nxt = self.t[self.i + 1][1] if self.i + 1 < len(self.t) else None
        return nxt != "\\frac"

    def unary(self, stop=None) -> Num:
        tok = self.peek()[1]
        if tok in ("-", "+"):
            self.i += 1
            v = self.unary(stop)
            if tok == "+":
                return v
            if v.inf:
                return Num(inf=-v.inf)
            return Num(q=-v.q) if v.q is not None else Num(x=-v.x)
        return self.power_(stop)

    def power_(self, stop=None) -> Num:
        base = self.postfix()
        if self.peek()[1] in ("^", "**"):
            self.i += 1
            return self.power(base, self.exponent())
        return base

    def exponent(self) -> Num:
        tok = self.peek()[1]
        if tok in ("-", "+"):
            self.i += 1
            v = self.exponent()
            return v if tok == "+" else (Num(q=-v.q) if v.q is not None else Num(x=-v.x))
        return self.postfix()

    def postfix(self) -> Num:
        v = self.atom()
        if self.peek()[1] == "°":  # degrees inside an expression (\sin 30°): radians
            self.i += 1
            self.has_pi = True
            v = self.mul(v, self._mk(x=mpmath.pi / 180))
        while self.peek()[1] == "!":
            self.i += 1
            if v.inf:
                raise NotNumeric("factorial of infinity")
            if v.q is not None and v.q.denominator == 1:
                if v.q < 0:
                    raise DomainError("factorial of a negative integer")
                if v.q > MAX_FACTORIAL:
                    raise TooLarge("factorial too large")
                v = self._mk(q=Fraction(math.factorial(v.q.numerator)))
            else:  # a variable at a random point: Gamma(x + 1)
                x = v.mp()
                if not isinstance(x, mpmath.mpf) or x > MAX_FACTORIAL or (x <= -1 and x == mpmath.floor(x)):
                    raise DomainError("factorial")  # Gamma(x + 1) has poles at the negative integers only
                v = self._mk(x=mpmath.gamma(x + 1))
        return v

    def group(self) -> Num:
        """A braced argument ``{...}`` or a one-character shorthand (``\\frac12``, ``\\sqrt3``)."""
        kind, tok, _ = self.peek()
        if tok == "{":
            self.i += 1
            v = self.expr()
            self.expect("}")
            return v
        if kind == "num":
            self.i += 1
            if len(tok) > 1 and tok.isdigit():
                self.t.insert(self.i, ("num", tok[1:], False))
                tok = tok[0]
            return self._mk(q=_decimal(tok)[0])
        if kind == "var" or tok == "\\pi":
            return self.atom()
        raise NotNumeric("group")

    def atom(self) -> Num:
        kind, tok, _ = self.peek()
        if kind is None:
            raise NotNumeric("unexpected end")
        self.i += 1
        if kind == "num":
            val, ulp, _ = _decimal(tok)
            self.max_digits = max(self.max_digits, len(tok))
            if ulp is None and self.peek()[1] == "\\frac":  # mixed number 2\frac12
                save = self.i
                try:
                    self.i += 1
                    a, b = self.group(), self.group()
                    if (a.q is not None and b.q is not None and a.q.denominator == 1 and b.q.denominator == 1
                            and 0 <= a.q < b.q and self.peek()[1] != "^"):
                        return self._mk(q=val + a.q / b.q)
                except NotNumeric:
                    pass
                self.i = save
            return self._mk(q=val)
        if kind == "rep":
            return self._mk(q=_parse_repeating(tok))
        if kind == "var":
            return self.variable(tok)
        if tok in ("(", "{", "["):
            v = self.expr()
            self.expect({"(": ")", "{": "}", "[": "]"}[tok])
            return v
        if tok == "|":
            v = self.expr(stop="|")
            self.expect("|")
            return self._abs(v)
        if kind == "cmd":
            name = tok[1:]
            if name == "frac":
                a = self.group()
                return self.div(a, self.group())
            if name == "sqrt":
                n = None
                if self.peek()[1] == "[":
                    self.i += 1
                    n = self.expr()
                    self.expect("]")
                return self.root(self.group(), n)
            if name == "pi":
                self.has_pi = True
                return self._mk(x=+mpmath.pi)
            if name == "infty":
                return Num(inf=1)
            if name == "binom":
                a, b = self.group(), self.group()
                if a.q is None or b.q is None or a.q.denominator != 1 or b.q.denominator != 1:
                    raise NotNumeric("binom")
                n, k = a.q.numerator, b.q.numerator
                if not 0 <= n <= 10_000:
                    raise TooLarge("binomial too large")
                return self._mk(q=Fraction(math.comb(n, k) if 0 <= k <= n else 0))
            if name in ("lfloor", "lceil"):
                v = self.expr()
                self.expect("\\rfloor" if name == "lfloor" else "\\rceil")
                return self._round(v, name)
            if name in _GREEK:
                return self.variable(tok)
            if name in _FUNCS:
                return self.function(name)
        raise NotNumeric(f"unexpected {tok}")

    def variable(self, name) -> Num:
        if name == "e":
            return self._mk(x=+mpmath.e)
        if name == "i":
            return Num(x=mpmath.mpc(0, 1))
        if self.env is None or name not in self.env:
            raise NotNumeric(f"variable {name}")
        return self._mk(q=self.env[name])

    def function(self, name) -> Num:
        power = base = None
        if name == "log" and self.peek()[1] == "_":  # \log_{2} 8
            self.i += 1
            base = self.group()
        if self.peek()[1] == "^":  # \sin^2 x
            self.i += 1
            power = self.exponent()
            if power.q == -1 and name in ("sin", "cos", "tan"):
                name, power = "arc" + name, None  # \cos^{-1} x is arccos x
        tok = self.peek()[1]
        if tok in ("(", "{"):
            arg = self.atom()
        else:
            kind = self.peek()[0]
            if kind not in ("num", "var") and tok not in ("\\pi",) and not (tok or "").startswith("\\"):
                raise NotNumeric("function argument")
            arg = self.power_()
            if self._starts_atom(None) and kind == "num":
                raise NotNumeric("ambiguous function argument")  # \sin 2x
        v = self.func(name, arg)
        if base is not None:
            v = self.div(v, self.func("ln", base))
        return self.power(v, power) if power is not None else v

_MIXED_PLAIN = re.compile(r"^([+-]?)\s*(\d+)\s+(\d+)\s*/\s*(\d+)$")
_SCI = re.compile(r"^([+-]?\s*\d+(?:\.\d*)?)\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?\s*([+-]?\s*\d+)\s*\}?$")
_LONE_DEC = re.compile(r"^[+-]?\s*(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_LONG_INT = re.compile(r"^[+-]?\d+$")


def _run(s: str, env) -> tuple[Num, "_Parser"]:
    p = _Parser(_tokens(s), env)
    try:
        return p.parse(), p
    except (ZeroDivisionError, ValueError, OverflowError) as e:
        raise DomainError(str(e))
    except RecursionError:
        raise TooLarge("nesting too deep")


def _eval(s: str, env=None, min_dps: int = 0) -> Num:
    """Value of s (raises NotNumeric / DomainError / TooLarge)."""
    src = (s, env)
    s = s.strip()
    pct = deg = False
    if s.endswith("%"):
        pct, s = True, s[:-1].rstrip()
    elif s.endswith("°") and s.count("°") == 1 and "\\" not in s:
        deg, s = True, s[:-1].rstrip()  # "30°": a number of degrees (the unit may be dropped)
    if not s:
        raise NotNumeric("empty")
    m = _MIXED_PLAIN.match(s)
    if m:
        if len(s) > 60 or int(m.group(4)) == 0:
            raise NotNumeric("mixed number")
        sign = -1 if m.group(1) == "-" else 1
        v = Num(q=sign * (int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))))
        return _finish(v, pct, deg)
    m = _SCI.match(s)
    if m:
        s = f"{m.group(1).replace(' ', '')}e{int(m.group(2).replace(' ', ''))}"
    if _LONG_INT.match(s) and len(s) > MAX_DIGITS_LITERAL:
        raise TooLarge("integer literal too long")
    v, p = _run(s, env)
    if v.q is None and not v.inf:
        # irrational: evaluate again with enough digits for the magnitudes and literals seen, so that a
        # difference hidden below 10^-30 (sqrt(2) + 10^-50) is still seen
        dps = max(int(p.max_mag) + p.max_digits + 40, min_dps)
        if dps > 6000:
            raise TooLarge("needs too much precision")
        with mpmath.workdps(dps):
            v, p2 = _run(s, env)
        v.has_pi, v.dps, v.src = p2.has_pi, dps, src
    if _LONE_DEC.match(s):
        _, ulp, sig = _decimal(s.replace(" ", "").lstrip("+-"))
        if ulp is not None:
            v.dec_ulp, v.dec_sig = ulp, sig
    return _finish(v, pct, deg)


def _finish(v: Num, pct: bool, deg: bool) -> Num:
    v.pct, v.deg = pct, deg
    if pct:
        if v.q is not None:
            v.q = v.q / 100
            if v.dec_ulp is not None:
                v.dec_ulp = v.dec_ulp / 100
        elif v.x is not None:
            v.x = v.x / 100
    return v


def evaluate(s: str) -> Optional[Num]:
    """Exact value of a closed numeric answer; None when it is not one. Raises TooLarge for huge inputs."""
    try:
        return _eval(s)
    except TooLarge:
        raise
    except NotNumeric:
        return None
