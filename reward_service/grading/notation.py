r"""Alternative notations that mean the same value, rewritten to one form (called by :func:`.normalize.clean`).

* Function names written as text: ``\text{sin}``, ``\mathrm{sin}``, ``\operatorname{sin}`` and a bare ``sin``
  before its argument are ``\sin`` (also cos, tan, cot, sec, csc, their arc / hyperbolic forms, ln, log, exp).
  A bare name counts only as a whole word before a bracket, a space, a digit or a backslash
  (``sin(x)``, ``2 sin x``): ``\sin``'s letters inside a longer word are left alone.
* Primes: ``^{\prime}`` / ``^\prime`` are ``'``, ``^{\prime\prime}`` is ``''``.
* Degrees, minutes and seconds: ``48^\circ 42'`` is ``48.7°`` (``D° M' S''`` = D + M/60 + S/3600 degrees,
  exactly: ``10° 20'`` is ``\frac{31}{3}°``); minutes of 60 or more are left as written.
* Ordinal suffixes on a whole answer: ``12^{\text{th}}``, ``12^{th}``, ``12th``, ``21^{\mathrm{st}}``,
  ``2\text{nd}``, "the 3rd" are the number, when the suffix is the right one for it (``12st`` is left alone).
* Circled and parenthesised numerals (``①②③``, ``❶``, ``⑴``), which label statements in multiple-answer
  questions, are their numbers as a list: ``①③`` is ``1, 3`` (before NFKC would glue them into ``13``);
  the ideographic comma ``、`` separates list items.
"""
from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

_FN = ("arcsin|arccos|arctan|arccot|arcsec|arccsc|sinh|cosh|tanh|coth|sin|cos|tan|cot|sec|csc|ln|log|exp")
_FN_AS_TEXT = re.compile(r"\\(?:text|mathrm|textrm|textnormal|operatorname\*?)\s*\{\s*(" + _FN + r")\s*\}")
_FN_BARE = re.compile(r"(?<![A-Za-z\\])(" + _FN + r")(?=\s*[({\[\\0-9]|\s+[A-Za-z0-9])")
_FN_ANY = re.compile(r"(?<![A-Za-z\\])(?:" + _FN + r")")
_PRIME = re.compile(r"\^\s*\{\s*((?:\\prime\s*)+)\}|\^\s*\\prime(?![a-zA-Z])")
_NUM = r"(\d+(?:\.\d+)?)"
_DMS = re.compile(_NUM + r"\s*°\s*" + _NUM + r"\s*'(?!')(?:\s*" + _NUM + r"\s*(?:''|\"))?")
_ORDINAL = re.compile(r"^(?:the\s+)?(\d+)\s*(?:\^\s*\{?\s*(?:\\(?:text|mathrm|textrm)\s*\{)?\s*(st|nd|rd|th)\s*\}?\s*\}?|"
                      r"\\(?:text|mathrm|textrm)\s*\{\s*-?(st|nd|rd|th)\s*\}|-?(st|nd|rd|th))$")
_CIRCLED_RANGES = ((0x2460, 0x249B), (0x24EA, 0x24FF), (0x2776, 0x2793), (0x3251, 0x325F), (0x32B1, 0x32BF))
_CIRCLED = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _CIRCLED_RANGES) + "]")
_CIRCLED_RUN = re.compile(_CIRCLED.pattern + r"(?:[\s,、，]*" + _CIRCLED.pattern + r")*")


def _ordinal_suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def circled_numerals(s: str) -> str:
    """``①②③`` -> ``1, 2, 3`` (module docstring); other text unchanged."""
    if not _CIRCLED.search(s):
        return s.replace("、", ", ")

    def run(m: re.Match) -> str:
        return ", ".join(str(int(unicodedata.numeric(c))) for c in _CIRCLED.findall(m.group()))

    return _CIRCLED_RUN.sub(run, s).replace("、", ", ")


def _dms(m: re.Match) -> str:
    d, mins, secs = Fraction(m.group(1)), Fraction(m.group(2)), Fraction(m.group(3) or 0)
    if mins >= 60 or secs >= 60:
        return m.group()
    v = d + mins / 60 + secs / 3600
    den = v.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den == 1:  # a terminating decimal, written exactly
        k = 0
        while (v * 10 ** k).denominator != 1:
            k += 1
        digits = str(abs(v.numerator * 10 ** k // v.denominator)).rjust(k + 1, "0")
        text = ("-" if v < 0 else "") + (digits[:-k] + "." + digits[-k:] if k else digits)
    else:
        text = f"\\frac{{{v.numerator}}}{{{v.denominator}}}"
    return text + "°"


def rewrite(s: str) -> str:
    """Apply the rules of the module docstring to a cleaned answer (degrees already written ``°``)."""
    if "\\" in s:
        if "{" in s and ("text" in s or "rm" in s or "operatorname" in s):
            s = _FN_AS_TEXT.sub(lambda m: "\\" + m.group(1) + " ", s)
        if "prime" in s:
            s = _PRIME.sub(lambda m: "'" * max(1, (m.group(1) or "").count("\\prime")), s)
    if any(f in s for f in ("sin", "cos", "tan", "cot", "sec", "csc", "ln", "log", "exp")) and _FN_ANY.search(s):
        s = _FN_BARE.sub(lambda m: "\\" + m.group(1) + " ", s)
    if "°" in s and "'" in s:
        s = _DMS.sub(_dms, s)
    if "  " in s:
        s = re.sub(r"  +", " ", s)
    if (s[:1].isdigit() or s[:4].lower() == "the ") and len(s) < 40:
        m = _ORDINAL.match(s)
        if m and (m.group(2) or m.group(3) or m.group(4)) == _ordinal_suffix(int(m.group(1))):
            s = m.group(1)
    return s
