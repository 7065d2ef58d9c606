"""Pre-screen limits, so that every answer is decided in bounded time (a few ms up to the 1M-character limit).

Two levels:

* :func:`too_deep` (before any parsing: structures, exact arithmetic, identity tests): an answer longer than
  ``MAX_STRUCT_CHARS`` or nested deeper than ``MAX_DEPTH`` brackets is compared as a string only (identical
  or wrong, reason "nesting too deep" / "answer too long to parse"); more than ``2 * MAX_DEPTH`` absolute-value
  bars count as too deep. Linear time. Together with the extraction limits (boxes found from the end, phrases
  searched in the last 20k characters, brace matching over braces only) every input up to the 1M-character
  limit is graded in well under 50 ms, except answers that legitimately need sympy.
* :func:`too_complex` (before symbolic work), below.

An answer that fails a limit never reaches sympy: it can still be equal to the gold by the exact string /
exact-arithmetic path (:mod:`numbers` has its own size guards), otherwise it is graded ``wrong`` with the reason
"too large to compare". The limits (:func:`too_complex`):

* length above ``MAX_SYMBOLIC_CHARS`` characters;
* brace / bracket nesting deeper than ``MAX_DEPTH`` (``\\frac{\\frac{\\frac{...}}}`` 1000 deep);
* a digit run longer than ``MAX_DIGIT_RUN`` (a 100k-digit number);
* an exponent tower that can make a huge number (an exponent holding a power of a number: ``9^{9^{9^9}}``,
  ``10^{10^{100}}``, ``x^{2^{100}}``; or exponents nested three deep) or an exponent above ``MAX_EXPONENT``;
  a power of a variable or function inside an exponent (``e^{\\sec^2 t}``, ``e^{x^2}``) is no tower;
* a factorial of a number above ``MAX_FACTORIAL`` or a nested factorial (``(10!)!``);
* more than ``MAX_COMMANDS`` LaTeX commands;
* not math at all: unbalanced braces, more opening than closing brackets (``(`` and ``[`` together, so that
  half-open intervals pass), or an English word (4+ letters outside ``\\text{}`` that is no function name) —
  garbage the LaTeX parser would spend 100+ ms on.
"""
from __future__ import annotations

import re
from typing import Optional

from .normalize import balanced

MAX_STRUCT_CHARS = 4_000
MAX_SYMBOLIC_CHARS = 600
MAX_DEPTH = 24
MAX_DIGIT_RUN = 120
MAX_EXPONENT = 10_000
MAX_FACTORIAL = 500
MAX_COMMANDS = 80

_DIGITS = re.compile(r"\d{%d,}" % (MAX_DIGIT_RUN + 1))
_EXP_GROUP = re.compile(r"\^\s*\{")
_EXP_NUM = re.compile(r"\^\s*\{?\s*(\d+(?:\.\d+)?)")
_FACT = re.compile(r"(?<!\d)(\d+)\s*!")
_NESTED_FACT = re.compile(r"!\s*[)}]*\s*!")


def max_depth(s: str) -> int:
    """Deepest bracket nesting ({, (, [ and their closers), in one pass."""
    d = m = 0
    for c in s:
        if c in "{([":
            d += 1
            if d > m:
                m = d
        elif c in "})]":
            d -= 1
    return m


def too_deep(s: str) -> Optional[str]:
    """A short reason when s must only be compared as a string (see the module docstring), else None."""
    if len(s) > MAX_STRUCT_CHARS:
        return "answer too long to parse"
    if max_depth(s) > MAX_DEPTH or s.count("|") > 2 * MAX_DEPTH:
        return "nesting too deep"
    return None


# the base of a power inside an exponent is a number: 9^..., \pi^..., (10)^..., {2}^...
_BASE_BEFORE = re.compile(r"(?:\d[\d.]*|\\pi|\((?:[\d.\s+\-*/]|\\cdot)*\)|\{[\d.\s+\-*/]*\})\s*$")


def _tower(s: str) -> bool:
    """True for an exponent tower that can make a huge number: an exponent containing a power of a number
    (``9^{9^9}``, ``x^{2^{100}}``, ``e^{10^{10}}``), or exponents nested three deep (``e^{e^{e^{x}}}``). A
    power of a variable or a function inside an exponent (``e^{\\sec^2 t}``, ``e^{x^2}``, ``2^{n^2}``) is an
    ordinary function, not a tower."""
    for m in _EXP_GROUP.finditer(s):
        depth, inner_start = 0, m.end()
        for j in range(m.end() - 1, min(len(s), m.end() + 2000)):
            c = s[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            elif c == "^" and depth >= 1:
                if _BASE_BEFORE.search(s[inner_start: j]) or depth >= 2 and _nested_exponent(s, m.end(), j):
                    return True
    # a^b^c written without braces
    return bool(re.search(r"\^\s*[\w.]+\s*\^", s))


def _nested_exponent(s: str, start: int, j: int) -> bool:
    """The ``^`` at ``j`` sits inside an exponent group that is itself inside the exponent opened at ``start``."""
    depth = 0
    for k in range(start, j):
        if s[k] == "{":
            depth += 1
            if s[max(start, k - 1): k].strip() == "^" or s[max(start, k - 2): k].replace(" ", "").endswith("^"):
                return True
        elif s[k] == "}":
            depth -= 1
    return False


def too_complex(s: str) -> Optional[str]:
    """A short reason when s must not go to the symbolic path, else None."""
    if len(s) > MAX_SYMBOLIC_CHARS:
        return "answer too long for symbolic comparison"
    if max_depth(s) > MAX_DEPTH:
        return "nesting too deep"
    if _DIGITS.search(s):
        return "number too long"
    if "^" in s:
        if _tower(s):
            return "exponent tower"
        for m in _EXP_NUM.finditer(s):
            try:
                if float(m.group(1)) > MAX_EXPONENT:
                    return "exponent too large"
            except ValueError:
                return "exponent too large"
    if "!" in s:
        for m in _FACT.finditer(s):
            if int(m.group(1)) > MAX_FACTORIAL:
                return "factorial too large"
        if _NESTED_FACT.search(s):
            return "nested factorial"
    if s.count("\\") > MAX_COMMANDS:
        return "too many commands"
    if _unbalanced(s):
        return "unbalanced brackets"
    bare = _COMMANDS.sub(" ", s)
    if any(w.lower() not in _FUNCTION_NAMES for w in _WORD.findall(bare)):
        return "text, not math"
    return None


_COMMANDS = re.compile(r"\\(?:begin|end|text|mathrm|mbox|textbf|operatorname|mathbf|textnormal)\s*\{[^{}]*\}|\\[a-zA-Z]+")
_WORD = re.compile(r"[A-Za-z]{4,}")
_FUNCTION_NAMES = {"sinh", "cosh", "tanh", "arcsin", "arccos", "arctan", "sqrt", "frac", "floor", "ceil", "sech",
                   "csch", "coth", "asin", "acos", "atan", "asinh", "acosh", "atanh", "infty", "binom", "gamma", "beta",
                   "alpha", "delta", "theta", "lambda", "sigma", "omega"}


def _unbalanced(s: str) -> bool:
    """Braces that do not pair up, or more opening than closing round/square brackets."""
    if not balanced(s):
        return True
    return s.count("(") + s.count("[") != s.count(")") + s.count("]")
