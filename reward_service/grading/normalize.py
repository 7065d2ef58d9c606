"""Text clean-up of an extracted answer (LaTeX, unicode, spacing, units).

Rules (each applied by :func:`clean`, in this order):

* Broken escapes: a form feed / backspace / bell / vertical tab in the text is a ``\\f``, ``\\b``, ``\\a``,
  ``\\v`` that a JSON or Python string swallowed (``"\\frac"`` -> form feed + ``rac``). Tabs are left alone
  (a tab before ``ext`` is not repaired into ``\\text``).
* Doubly escaped LaTeX (``\\\\frac``, ``\\\\boxed``, with no single-backslash command) is un-escaped once.
* Unicode: minus signs and dashes, ``×·÷√∛π°∞≤≥≠±∪∩∈∅ℝℤℕℚℂ``, runs of superscript / subscript characters
  (``2¹⁰`` -> ``2^{10}``, ``10⁻³``), thin / zero-width / no-break spaces map to their LaTeX or ASCII form; what is
  left goes through NFKC (fullwidth ``４２``, mathematical bold ``𝟒𝟐``, vulgar fractions ``⅔``) and decimal digits of
  every script become ASCII digits; invisible format characters (category Cf: zero-width joiners, BOM, soft
  hyphen, bidi overrides) are dropped, so the logical text is graded. Letters that only look like digits (``O``, ``l``, Cyrillic ``х``) stay letters.
* Invisible or decorative LaTeX: ``\\phantom{…}`` (and ``\\hphantom``/``\\vphantom``) and struck-out text
  (``\\cancel{…}``, ``\\sout{…}``) are removed with their content; ``\\color{red}``, ``\\textcolor{red}{…}``,
  font sizes and style wrappers (``\\boldsymbol``, ``\\bm``, ``\\mathbf``, ``\\underline``, a nested ``\\boxed``) keep
  only their content. ``\\not=`` is ``\\ne``.
* Groups of three digits separated by spaces are one number (``1 000 000``, ``1\\,000``). ``inf`` / ``infinity`` / ``\\text{inf}`` are ``\\infty``;
  a whole answer "no solution(s)" / "no real roots" / "empty set" is ``\\{\\}``, "all real numbers" is
  ``\\mathbb{R}`` and "DNE" is "does not exist"; ``\\langle 1, 2 \\rangle`` is the tuple ``(1, 2)``.
* Math delimiters (``$``, ``$$``, ``\\(`` ``\\)``, ``\\[`` ``\\]``), sizing commands (``\\left``,
  ``\\right``, ``\\big``...), ``\\displaystyle``, spacing commands (``\\!``, ``\\,``, ``\\;``, ``\\quad``,
  ``~``) and trailing sentence punctuation are dropped; ``\\dfrac``/``\\tfrac``/``\\cfrac`` become ``\\frac``;
  ``{,}`` (LaTeX thousands separator) becomes ``,``; ``\\%`` becomes ``%``; every degree notation
  (``^\\circ``, ``^{\\circ}``, ``\\degree``, ``\\textcirc``, ``°``) becomes ``°``.
* Alternative notations (:mod:`.notation`): ``\\text{sin}`` / ``\\operatorname{sin}`` / ``sin(x)`` are ``\\sin``,
  ``48^\\circ 42'`` is ``48.7°``, ``12^{\\text{th}}`` is ``12``, circled numerals ``①③`` are the list ``1, 3``.

Units: :func:`split_unit` separates a trailing unit (``\\text{ cm}^2``, ``\\mbox{ miles}``, ``meters``,
``m²``, ``square units``) from the value. Two answers whose units differ are different (``5 m`` != ``5 cm``);
a unit present on one side only is dropped (``10 \\text{ cm}`` == ``10``).
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache, wraps

from . import notation

_CTRL_FIX = {"\x0c": "\\f", "\x08": "\\b", "\x07": "\\a", "\x0b": "\\v"}

_UNICODE = [
    ("\u2212", "-"), ("\u2012", "-"), ("\u2013", "-"), ("\u2014", "-"), ("\ufe63", "-"), ("\uff0d", "-"),
    ("\u00d7", "\\times "), ("\u22c5", "\\cdot "), ("\u00b7", "\\cdot "), ("\u2219", "\\cdot "),
    ("\u00f7", "\\div "), ("\u221a", "\\sqrt"), ("\u03c0", "\\pi "), ("\u221e", "\\infty "),
    ("\u2264", "\\le "), ("\u2266", "\\le "), ("\u2265", "\\ge "), ("\u2267", "\\ge "), ("\u2260", "\\ne "),
    ("\u00b1", "\\pm "), ("\u2213", "\\mp "), ("\u222a", "\\cup "), ("\u2229", "\\cap "), ("\u2208", "\\in "),
    ("\u2205", "\\emptyset "), ("\u221b", "\\sqrt[3]"), ("\u221c", "\\sqrt[4]"), ("\u211d", "\\mathbb{R}"),
    ("\u2124", "\\mathbb{Z}"), ("\u2115", "\\mathbb{N}"), ("\u211a", "\\mathbb{Q}"), ("\u2102", "\\mathbb{C}"),
    ("\u00bd", "\\frac{1}{2}"), ("\u00bc", "\\frac{1}{4}"), ("\u00be", "\\frac{3}{4}"),
    ("\u2009", " "), ("\u202f", " "), ("\u00a0", " "), ("\u2002", " "), ("\u2003", " "), ("\u2005", " "),
    ("\u2006", " "), ("\u200a", " "), ("\u200b", ""), ("\u2061", ""), ("\u3000", " "),
    ("\u2032", "'"), ("\u2033", "''"), ("\uff0c", ","), ("\uff1a", ":"), ("\u2236", ":"), ("\u00b0", "\u00b0"),
    ("\u2217", "*"), ("\u2044", "/"), ("\u2215", "/"),
]
_UNICODE_TABLE = {ord(a): b for a, b in _UNICODE if len(a) == 1}

_SIZING = re.compile(r"\\(?:m?left|m?right|[bB]igg?[lrm]?|middle)(?![a-zA-Z])\s*")
_SIZING_DOT = re.compile(r"\\(?:m?left|m?right)\s*\.")
_SPACING = re.compile(r"(?<!\\)\\(?:[,;:> ]|q?quad(?![a-zA-Z])|enspace|thinspace|medspace|thickspace|negthinspace|hspace\*?\{[^{}]*\}|kern\s*-?[\d.]+\w*)|~")
_LONE_BACKSLASH_END = re.compile(r"(?<!\\)\\\s*$")  # a control space "\ " whose space was trimmed away
_STYLE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z])")
_FRAC = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_BINOM = re.compile(r"\\[dt]binom(?![a-zA-Z])")
_DEGREE = re.compile(r"\\text(?:circ|degree)(?![a-zA-Z])|\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}|\\circ(?![a-zA-Z])|\^\s*\{?\s*o\s*\}?(?=\s*$)")
_THOUSANDS_BRACE = re.compile(r"\s*\{\s*,\s*\}\s*")
_WS = re.compile(r"\s+")
_DOUBLE_CMD = re.compile(r"(?<!\\)\\\\[a-zA-Z]")
_SINGLE_CMD = re.compile(r"(?<!\\)\\[a-zA-Z]")
_ENV_WORD = re.compile(r"\\(?:begin|end)\{")
_TEXT_CMDS = r"(?:text|textnormal|textrm|textbf|textit|textsf|texttt|mathrm|mathbf|mathit|mathsf|mathtt|mbox|hbox|rm|bf|it|operatorname\*?|emph)"


_CURRENCY = re.compile(r"[€£¥₹₽₩]|\\(?:euro|pounds|yen)(?![a-zA-Z])|(?<![A-Za-z\\])(?:USD|US\\?\$|EUR|GBP|INR|CNY|RMB|JPY)(?![A-Za-z])")
_TEMPERATURE = re.compile(r"°\s*(?:\\(?:text|mathrm)\s*\{\s*([CFK])\s*\}|([CFK])(?![a-zA-Z]))")
_EMPTYSET = re.compile(r"\\(?:emptyset|varnothing)(?![a-zA-Z])|∅|\\\{\s*\\\}")
_OPNAME = re.compile(r"\\operatorname\s*\{\s*([a-zA-Z]+)\s*\}")
_OPNAME_MAP = {"acos": "arccos", "asin": "arcsin", "atan": "arctan", "acot": "arccot", "asec": "arcsec",
               "acsc": "arccsc", "asinh": "operatorname{arcsinh}", "acosh": "operatorname{arccosh}",
               "atanh": "operatorname{arctanh}", "sin": "sin", "cos": "cos", "tan": "tan", "ln": "ln",
               "log": "log", "exp": "exp"}
_GREEK_BARE = re.compile(r"(?<![\\a-zA-Z])(alpha|beta|gamma|delta|epsilon|theta|lambda|sigma|omega|phi|psi|rho|tau|mu|nu|xi|eta|zeta|kappa|chi)(?=_)")
_PERCENT_WORD = re.compile(r"\s*(?:\\text\s*\{\s*(?:percent(?:age)?|pct|%)\s*\}|(?<![a-zA-Z])(?:percent(?:age)?|pct)(?![a-zA-Z]))")
_THOUSANDS_FREE = re.compile(r"(?<![\d.,(\[{])[1-9]\d{0,2}(?:,\d{3})+(?![\d)\]]|,\d)")
_FRAC_DD = re.compile(r"\\frac\s*(\d)\s*(\d)")
_FRAC_D_BRACE = re.compile(r"\\frac\s*([\da-zA-Z])\s*\{")
_FRAC_BRACE_D = re.compile(r"\\frac\s*(\{[^{}]*\})\s*([\da-zA-Z])")
_FRAC_DL = re.compile(r"\\frac\s*(\d)\s*([a-zA-Z])(?![a-zA-Z])")
_SQRT_D = re.compile(r"\\sqrt\s*([\da-zA-Z])(?![a-zA-Z])")


def _shorthand(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{x}``, ``\\frac{x}2``, ``\\sqrt3`` -> ``\\sqrt{3}``."""
    s = _FRAC_DD.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_DL.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_D_BRACE.sub(r"\\frac{\1}{", s)
    s = _FRAC_BRACE_D.sub(r"\\frac\1{\2}", s)
    s = _SQRT_D.sub(r"\\sqrt{\1}", s)
    return s


def fix_escapes(s: str) -> str:
    """Repair control characters left by swallowed backslash escapes and doubly escaped LaTeX."""
    if any(c in s for c in _CTRL_FIX):
        s = "".join(_CTRL_FIX.get(c, c) for c in s)
    if "\\\\" in s and _DOUBLE_CMD.search(s) and not _SINGLE_CMD.search(s.replace("\\\\", "")):
        s = s.replace("\\\\", "\\")
        s = re.sub(r"\\n(?![a-zA-Z])|\\n(?=[A-Z*])", "\n", s)
    return s


_SUP = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni"))
_SUB = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()"))
_SUP_RUN = re.compile("[" + "".join(_SUP) + "]+")
_SUB_RUN = re.compile("[" + "".join(_SUB) + "]+")
_SQRT_NUM = re.compile(r"√\s*(\d+(?:\.\d+)?|[a-zA-Z])")


def _unicode_digits(s: str) -> str:
    """Decimal digits of any script (Arabic-Indic ``٤٢``...) as ASCII digits."""
    return "".join(str(unicodedata.decimal(c)) if not c.isascii() and c.isdecimal() else c for c in s)


def _sqrt_paren(s: str) -> str:
    """``√(x+1)`` -> ``\\sqrt{x+1}`` (balanced parentheses)."""
    out, i = [], 0
    while True:
        j = s.find("√(", i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        depth, k = 0, j + 1
        while k < len(s):
            depth += {"(": 1, ")": -1}.get(s[k], 0)
            if depth == 0:
                break
            k += 1
        if k >= len(s):
            out.append(s[i:])
            return "".join(out)
        out.append(s[i:j] + "\\sqrt{" + s[j + 2:k] + "}")
        i = k + 1


def to_ascii_latex(s: str) -> str:
    """Map unicode math symbols and exotic spaces to LaTeX / ASCII (see the module docstring)."""
    if s.isascii():
        return s
    s = notation.circled_numerals(s)
    s = _SUP_RUN.sub(lambda m: "^{" + "".join(_SUP[c] for c in m.group()) + "}", s)
    s = _SUB_RUN.sub(lambda m: "_{" + "".join(_SUB[c] for c in m.group()) + "}", s)
    if "√" in s:
        s = _sqrt_paren(s)
        s = _SQRT_NUM.sub(r"\\sqrt{\1}", s)
    s = s.translate(_UNICODE_TABLE)
    if not s.isascii():
        s = unicodedata.normalize("NFKC", s).replace("\u2044", "/")
        s = _unicode_digits(s)
        # invisible format characters (zero-width joiners, BOM, soft hyphen, bidi overrides): the logical text
        s = "".join(c for c in s if c.isascii() or unicodedata.category(c) != "Cf")
    return s


def drop_spacing(s: str) -> str:
    """LaTeX spacing commands (``\\,`` ``\\;`` ``\\:`` ``\\ `` ``\\quad`` ``~``...) as plain spaces; a trailing ``\\``
    left by a control space whose space was trimmed (``\\ 12\\ `` stripped to ``\\ 12\\``) is dropped."""
    s = _SPACING.sub(" ", s)
    return _LONE_BACKSLASH_END.sub("", s) if s.rstrip().endswith("\\") else s


def strip_delimiters(s: str) -> str:
    """Drop math-mode delimiters and escaped dollars (currency)."""
    s = s.replace("\\$", " ")
    s = s.replace("$", " ")
    s = re.sub(r"\\[\[\]()]", " ", s)
    return s


def short_cache(maxsize: int, max_len: int = 2000):
    """A bounded LRU cache for functions of a string; longer strings are not cached (an adversary sending
    many distinct huge answers must not fill memory)."""
    def deco(fn):
        cached = lru_cache(maxsize=maxsize)(fn)

        @wraps(fn)
        def wrapper(s, *args):
            if len(s) > max_len:
                return fn(s, *args)
            return cached(s, *args)
        wrapper.cache_info = cached.cache_info
        wrapper.cache_clear = cached.cache_clear
        return wrapper
    return deco


@short_cache(8192)
def clean(s: str) -> str:
    """Normalise an answer string (see the module docstring for the rules)."""
    s = fix_escapes(s)
    s = to_ascii_latex(s)
    s = _WS.sub(" ", s)  # first: long whitespace runs would make the \s* patterns below quadratic
    s = strip_delimiters(s)
    s = _CURRENCY.sub(" ", s)
    s = re.sub(r",\s*\\!\s*", ",", s)
    s = s.replace("\\!", "")
    if "\\\\" in s and not _ENV_WORD.search(s):
        s = re.sub(r"\\\\(?=[a-zA-Z])", r"\\", s)
    if "\\" in s:
        s = _decorations(s)
    s = s.replace("\\langle", "(").replace("\\rangle", ")")  # vectors <1, 2>
    s = _SIZING_DOT.sub(" ", s)
    s = _SIZING.sub("", s)
    s = _STYLE.sub("", s)
    s = drop_spacing(s)
    s = _FRAC.sub(r"\\frac", s)
    s = _BINOM.sub(r"\\binom", s)
    if "\\frac" in s or "\\sqrt" in s:
        s = _shorthand(s)
    if "\\choose" in s:
        s = re.sub(r"\{([^{}]*?)\\choose([^{}]*?)\}", r"\\binom{\1}{\2}", s)
    s = _EMPTYSET.sub(r"\\{\\}", s)
    if "\\operatorname" in s:
        s = _OPNAME.sub(lambda m: "\\" + _OPNAME_MAP.get(m.group(1), "operatorname{" + m.group(1) + "}"), s)
    s = _GREEK_BARE.sub(r"\\\1", s)
    s = re.sub(r"\s+(?=[_^])|(?<=[_^])\s+", "", s)
    s = _PERCENT_WORD.sub("%", s)
    s = _THOUSANDS_BRACE.sub(",", s)
    s = _THOUSANDS_FREE.sub(lambda m: m.group(0).replace(",", ""), s)
    s = s.replace("\\%", "%").replace("\\infin ", "\\infty ")
    s = _DEGREE.sub("°", s)
    if "°" in s:
        s = _TEMPERATURE.sub(lambda m: " \\text{deg" + (m.group(1) or m.group(2)) + "}", s)  # 5°C: a unit
    s = s.replace("\\lt", "<").replace("\\gt", ">")
    s = re.sub(r"\\(?:leq|leqslant|le)(?![a-zA-Z])", r"\\le ", s)
    s = re.sub(r"\\(?:geq|geqslant|ge)(?![a-zA-Z])", r"\\ge ", s)
    s = re.sub(r"\\(?:neq|ne)(?![a-zA-Z])", r"\\ne ", s)
    s = s.replace("<=", "\\le ").replace(">=", "\\ge ")
    if "!=" in s:  # "x != 3" is "not equal"; "3!=6" and "n!=120" are factorials
        s = re.sub(r"(?<![\w)}\]])\s*!=|(?<=\s)!=", " \\\\ne ", s)
    s = _WS.sub(" ", s).strip()
    s = re.sub(r"^(?:\\approx|\\sim|≈|~)\s*", "", s)  # "≈ 3.14"
    s = _DIGIT_SPACE.sub(lambda m: m.group().replace(" ", ""), s)
    s = re.sub(r"(?<=\d)\s*\\[lc]?dots\s*$", "...", s)  # 0.333\ldots: the digits shown
    s = strip_trailing_punct(s)
    s = strip_outer_text(s)
    s = notation.rewrite(s)
    s = _INF_WORD.sub(r"\\infty", s)
    if len(s) < 40 and s[:1].isalpha():
        s = _NO_SOLUTION.sub(r"\\{\\}", s)
        s = _ALL_REALS.sub(r"\\mathbb{R}", s)
        s = _DNE.sub("does not exist", s)
    return s


_ALL_REALS = re.compile(r"(?i)^(?:all\s+real\s+numbers|all\s+reals|the\s+real\s+numbers|real\s+numbers)$")
_NO_SOLUTION = re.compile(r"(?i)^(?:there\s+(?:is|are)\s+)?no\s+(?:real\s+)?(?:solutions?|roots?)$|^(?:the\s+)?empty\s+set$")
_DNE = re.compile(r"(?i)^(?:DNE|does\s*n['’]?o?t\s+exist|it\s+does\s+not\s+exist)$")


_DROP_WITH_ARG = re.compile(r"\\(?:[hv]?phantom|cancel|bcancel|xcancel|sout|st)\s*\{[^{}]*\}")
_DROP = re.compile(r"\\(?:color\s*\{[^{}]*\}|textcolor\s*\{[^{}]*\}|tiny|scriptsize|footnotesize|small|normalsize|"
                   r"large|Large|LARGE|huge|Huge)(?![a-zA-Z])")
_UNWRAP = re.compile(r"\\(?:boldsymbol|bm|pmb|underline|mathbf|mathit|mathnormal|boxed|fbox|textstyle|hbox)\s*\{([^{}]*)\}")
_NOT_EQ = re.compile(r"\\not\s*=|\\not\s*\\equiv")
_DIGIT_SPACE = re.compile(r"(?<![\d.^_{])\d{1,3}(?: \d{3})+(?![\d.])")
_INF_WORD = re.compile(r"(?<![a-zA-Z\\])(?:inf|infinity|Infinity|INF)(?![a-zA-Z])")


def _decorations(s: str) -> str:
    """Drop invisible / struck-out content and colour / size commands, unwrap style commands."""
    for _ in range(20):
        t = _DROP_WITH_ARG.sub("", s)
        t = _DROP.sub("", t)
        t = _UNWRAP.sub(r"{\1}", t)
        if t == s:
            break
        s = t
    return _NOT_EQ.sub(r"\\ne ", s)


def strip_trailing_punct(s: str) -> str:
    """Remove sentence punctuation and stray wrappers at the ends: ``"x=3."`` -> ``"x=3"``."""
    while True:
        t = s.strip().rstrip(".,;:?").rstrip()
        while t.endswith("\\\\"):
            t = t[:-2].rstrip().rstrip(".,;:?").rstrip()
        t = t.strip("*").strip() if t.startswith("**") or t.endswith("**") else t  # markdown bold
        t = t.replace('\\"', '"').strip('"“”`').strip() if t[:1] in '"“`\\' or t[-1:] in '"”`' else t  # quotes
        if t.startswith("\\quad") or t.startswith(":"):
            t = t.lstrip(":").strip()
        if t == s:
            return t
        s = t


def strip_outer_text(s: str) -> str:
    """``\\text{(C)}`` -> ``(C)``, ``\\textbf{Even}`` -> ``Even``: unwrap a text command spanning the whole answer."""
    m = re.fullmatch(r"\\" + _TEXT_CMDS + r"\s*\{(.*)\}", s)
    if m and balanced(m.group(1)):
        return m.group(1).strip()
    return s


def balanced(s: str) -> bool:
    """True when ``{``/``}`` are balanced (ignoring escaped ``\\{``)."""
    depth = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


_TEXT_CMD_RE = re.compile(r"\\" + _TEXT_CMDS + r"\s*\{([^{}]*)\}")


def strip_text_commands(s: str) -> str:
    """``\\text{abc}`` -> ``abc`` everywhere (used for text / unit comparison)."""
    for _ in range(8):  # nesting deeper than 8 text commands is not unwrapped (bounded cost)
        t = _TEXT_CMD_RE.sub(r"\1", s)
        if t == s:
            break
        s = t
    return s


# ----------------------------------------------------------------------------------------------------------
# Units
# ----------------------------------------------------------------------------------------------------------
_UNIT_WORDS = (
    "units? square units? sq units? cubic units? unit squared "
    "meters? metres? m cm mm km nm um µm kilometers? kilometres? centimeters? centimetres? millimeters? "
    "inch(?:es)? in ft feet foot yards? yd miles? mi "
    "grams? g kg kilograms? mg tons? tonnes? pounds? lbs? lb ounces? oz "
    "liters? litres? l ml mL gallons? gal quarts? pints? cups? "
    "seconds? secs? s minutes? mins? min hours? hrs? hr h days? weeks? months? years? yrs? "
    "dollars? cents? euros? yuan rupees? rs usd "
    "degrees? deg radians? rad "
    "mph kph km/h m/s cm/s ft/s km/hr mi/hr miles/hour miles per hour "
    "sq cm sq m sq ft sq in square meters? square feet square inches square centimeters? "
    "cubic meters? cubic feet cubic inches cubic centimeters? "
    "people persons? students? children kids apples? books? marbles? cookies? boxes? points? ways? times? "
    "pages? coins? balls? cars? trees? eggs? cards? pieces? bags? boys? girls? men women sheep cows? dogs? cats? "
    "newtons? N joules? J watts? W volts? V amps? A kelvin K calories? kcal hz Hz pascals? Pa atm"
).split()
_UNIT_ALT = "|".join(sorted(set(_UNIT_WORDS), key=len, reverse=True))
# a unit word at the very end, optionally raised to a power (cm^2, m^{3}, m²)
_TRAILING_UNIT = re.compile(
    r"^(?P<val>.*?[0-9}\)a-zA-Z°%.])\s*(?P<unit>(?:\\" + _TEXT_CMDS + r"\s*\{\s*[^{}]*\}|(?:" + _UNIT_ALT + r")(?![a-zA-Z]))"
    r"(?:\s*\^\s*\{?\s*[0-9]\s*\}?)?(?:\s*(?:\\" + _TEXT_CMDS + r"\s*\{\s*[^{}]*\}|(?:" + _UNIT_ALT + r")(?![a-zA-Z]))(?:\s*\^\s*\{?\s*[0-9]\s*\}?)?)*)\s*$",
)
_CANON_UNIT = {
    "meter": "m", "metre": "m", "meters": "m", "metres": "m", "centimeter": "cm", "centimeters": "cm",
    "centimetre": "cm", "centimetres": "cm", "millimeter": "mm", "millimeters": "mm", "kilometer": "km",
    "kilometers": "km", "kilometre": "km", "kilometres": "km", "inches": "in", "inch": "in", "feet": "ft",
    "foot": "ft", "yards": "yd", "yard": "yd", "miles": "mi", "mile": "mi", "grams": "g", "gram": "g",
    "kilograms": "kg", "kilogram": "kg", "pounds": "lb", "pound": "lb", "lbs": "lb", "liters": "l", "liter": "l",
    "litres": "l", "litre": "l", "seconds": "s", "second": "s", "secs": "s", "sec": "s", "minutes": "min",
    "minute": "min", "mins": "min", "hours": "h", "hour": "h", "hrs": "h", "hr": "h", "days": "day",
    "weeks": "week", "months": "month", "years": "year", "yrs": "year", "yr": "year", "dollars": "dollar",
    "cents": "cent", "degrees": "deg", "degree": "deg", "radians": "rad", "radian": "rad", "units": "unit",
    "square": "sq", "squared": "sq", "sq": "sq", "cubic": "cu",
}
# units that do not make two answers different when present on both sides with different words
_NEUTRAL_UNITS = {"unit", "sq unit", "cu unit", "sq", "cu", "unit sq"}


def canonical_unit(u: str) -> str:
    """Canonical spelling of a unit string (``\\text{ cm}^2`` -> ``cm^2``, ``square meters`` -> ``sq m``)."""
    u = strip_text_commands(u)
    u = u.replace("{", "").replace("}", "").replace(" ", " ").strip().lower()
    u = re.sub(r"\s*\^\s*", "^", u)
    words = [w for w in re.split(r"\s+", u) if w]
    out = []
    for w in words:
        pw = ""
        m = re.match(r"^(.*?)(\^\d)$", w)
        if m:
            w, pw = m.group(1), m.group(2)
        out.append(_CANON_UNIT.get(w, w) + pw)
    u = " ".join(out)
    # "sq m" == "m^2", "cu cm" == "cm^3"
    u = re.sub(r"^sq (\S+)$", r"\1^2", u)
    u = re.sub(r"^cu (\S+)$", r"\1^3", u)
    return u


def split_unit(s: str) -> tuple[str, str | None]:
    """Split ``"15 \\text{ cm}^2"`` into ``("15", "cm^2")``; ``(s, None)`` when there is no trailing unit.

    Only a value that itself looks like a number or closes a group is split, so ``x`` or ``\\sin x`` keep
    their letters. Single-letter units (``m``, ``s``, ``g``...) are split only after a digit.
    """
    if len(s) > 400:
        return s, None
    m = _TRAILING_UNIT.match(s)
    if not m:
        return s, None
    val, unit = m.group("val").strip(), m.group("unit").strip()
    if not val or not re.search(r"[0-9]", val):
        return s, None
    bare = strip_text_commands(unit).strip()
    if not bare:
        return val, None
    # text wrapped answers like \text{(C)} or \text{odd} are not units
    if re.fullmatch(r"[a-zA-Z]", bare.strip()) and not re.search(r"[0-9]\s*$", val):
        return s, None
    # a value ending in a letter (e.g. "2x") followed by a bare single letter is algebra, not a unit
    if re.search(r"[a-zA-Z]$", val) and not unit.startswith("\\"):
        return s, None
    return val, canonical_unit(unit)


def units_conflict(u1: str | None, u2: str | None) -> bool:
    """Two present, different, non-neutral units conflict (``m`` vs ``cm``); a missing unit never does."""
    if not u1 or not u2:
        return False
    if u1 == u2:
        return False
    if u1 in _NEUTRAL_UNITS or u2 in _NEUTRAL_UNITS:
        return False
    strip_pl = lambda u: re.sub(r"(?<=[a-z]{3})s$", "", u)  # noqa: E731
    return strip_pl(u1) != strip_pl(u2)
