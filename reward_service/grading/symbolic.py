"""The symbolic path: LaTeX -> sympy through latex2sympy2-extended (antlr), then our own comparison.

Used only when :mod:`numbers` cannot decide (variables, functions, sets written unusually...). Inputs reach
this module only after :mod:`screen` has accepted them. No ``eval``/``sympify``/``parse_expr`` is applied to
user text: latex2sympy2-extended builds sympy objects from an antlr parse tree.

Equality rules (:func:`equal`):

* identical trees are equal;
* numbers / closed expressions: both evaluated to 50 significant digits, equal when they agree to a
  relative 1e-30 (a difference that small between two closed forms written with a few symbols does not occur
  in practice; exact integers and rationals never get here, :mod:`numbers` decides them);
* expressions with variables: probabilistic identity test, evaluated at 8 random points of both signs; the
  answer is "equal" only if every valid point agrees (and at least two points were valid); a point where one
  side has a finite value and the other has none makes them different;
* equations: equal when ``lhs - rhs`` of one is a nonzero constant multiple of the other's;
* inequalities / relations in one variable: compared as solution sets;
* sets, intervals, tuples, matrices: element-wise with the same rules.
"""
from __future__ import annotations

import logging
import random
import re
from typing import Optional

from .normalize import short_cache

logger = logging.getLogger(__name__)

_L2S = None
_SYMPY = None


def _lazy():
    global _L2S, _SYMPY
    if _L2S is None:
        import sympy
        from latex2sympy2_extended.latex2sympy2 import ConversionConfig, latex2sympy
        _SYMPY = sympy
        _L2S = (latex2sympy, ConversionConfig)
    return _L2S, _SYMPY


_COMPLEX = re.compile(r"(?<![a-zA-Z\\_{])i(?![a-zA-Z])|\\i(?![a-zA-Z])|\\imath|\\mathrm\{i\}|(?<![a-zA-Z\\])I(?![A-Z])")


_DEC = re.compile(r"(?<![\d.])(\d*)\.(\d+)(?:[eE]([+-]?\d+))?(?![\d.])")
_ENOT = re.compile(r"(?<![\d.a-zA-Z\\])(\d+)[eE]([+-]?\d+)(?![\d.a-zA-Z])")
_I_UNIT = re.compile(r"(?<![a-zA-Z\\_{])i(?![a-zA-Z])")


def _enot_digits(m: re.Match) -> str:
    e = int(m.group(2))
    if 0 <= e <= 400:
        return m.group(1) + "0" * e
    return m.group(1) + "\\cdot 10^{" + str(e) + "}"


def _dec_to_frac(m: re.Match) -> str:
    ip, fp, ex = m.group(1) or "0", m.group(2), m.group(3)
    num, den = ip + fp, "1" + "0" * len(fp)
    e = int(ex) if ex else 0
    if e > 0:
        num += "0" * min(e, 400)
    elif e < 0:
        den += "0" * min(-e, 400)
    return "\\frac{" + num.lstrip("0") + "0" * (num.lstrip("0") == "") + "}{" + den + "}"


def _prep(s: str) -> str:
    """Our cleaned LaTeX to what latex2sympy2-extended reads: decimals become exact fractions (0.1 = 1/10),
    e-notation a power of ten, degrees a multiple of pi/180, a lone ``i`` the imaginary unit."""
    s = _DEC.sub(_dec_to_frac, s)
    s = _ENOT.sub(_enot_digits, s)
    s = s.replace("°", "\\cdot\\frac{\\pi}{180}")
    s = s.replace("%", "\\%")
    if "\\sum" not in s and "\\prod" not in s and not re.search(r"_\{?\s*i", s) and _I_UNIT.search(s):
        s = _I_UNIT.sub("I", s)
    return s


def is_complex(s: str) -> bool:
    return bool(_COMPLEX.search(s))


@short_cache(4096, max_len=600)
def parse_latex(s: str, is_real: bool = True):
    """sympy object for a cleaned LaTeX string, or None when it cannot be parsed."""
    (latex2sympy, ConversionConfig), sympy = _lazy()
    try:
        return latex2sympy(_prep(s), is_real=is_real, convert_degrees=False,
                           normalization_config=None,
                           conversion_config=ConversionConfig(interpret_as_mixed_fractions=True,
                                                              lowercase_symbols=False))
    except Exception:  # antlr / conversion errors of every kind
        return None
    except RecursionError:
        return None


def _is_rel(x) -> bool:
    sympy = _SYMPY
    from latex2sympy2_extended.logic import And
    return isinstance(x, sympy.core.relational.Relational) or (
        isinstance(x, And) and all(isinstance(a, sympy.core.relational.Relational) for a in x.args))


UNDEFINED = "undefined"  # _evalf: the expression has no finite value at the point


def _evalf(e, subs=None, n=None):
    sympy = _SYMPY
    try:
        if subs:
            e = e.subs(subs)
        if not e.has(sympy.Integral, sympy.Sum, sympy.Product, sympy.Limit, sympy.Derivative):
            e = e.doit()
        n = n or _DIGITS
        v = e.evalf(n)
        if v.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            return UNDEFINED
        if isinstance(v, sympy.UnevaluatedExpr):
            v = v.args[0].evalf(n)
        if v.is_number:
            c = complex(v.evalf(20))
            return v, c
    except Exception:
        return None
    return None


def _close(a, b, rel=None) -> bool:
    """|a - b| <= rel * max(1, |a|, |b|); rel defaults to 10^-(digits - 20) of the current comparison."""
    sympy = _SYMPY
    n = _DIGITS
    rel = rel if rel is not None else sympy.Float(10, n) ** (-(n - 20))
    try:
        d = abs(sympy.N(a - b, n))
        m = max(abs(sympy.N(a, n)), abs(sympy.N(b, n)), 1)
        return bool(d <= rel * m)
    except Exception:
        return False


def _points(symbols, k, seed):
    """k random rational points with both signs (each symbol is negative at about half of them)."""
    rnd = random.Random(seed)
    pts = []
    for i in range(k):
        pts.append({s: (-1 if (i >> (j % 3)) & 1 else 1) * _SYMPY.Rational(rnd.randint(11, 97), rnd.randint(17, 43))
                    for j, s in enumerate(symbols)})
    return pts


def expr_equal(g, p) -> Optional[bool]:
    """Equality of two sympy scalar expressions (see the module docstring)."""
    sympy = _SYMPY
    try:
        if g == p:
            return True
    except Exception:
        pass
    if isinstance(g, sympy.MatrixBase) or isinstance(p, sympy.MatrixBase):
        if not (isinstance(g, sympy.MatrixBase) and isinstance(p, sympy.MatrixBase)) or g.shape != p.shape:
            return False
        return all(expr_equal(a, b) for a, b in zip(g, p))
    if not (isinstance(g, sympy.Expr) and isinstance(p, sympy.Expr)):
        return None
    try:
        free = sorted(g.free_symbols | p.free_symbols, key=str)
    except Exception:
        return None
    if any(isinstance(a, sympy.core.function.AppliedUndef) for e in (g, p) for a in e.atoms(sympy.Function)):
        return str(g) == str(p)
    if not (_evaluable(g) and _evaluable(p)):
        # symbolic sums / integrals / limits: only identical trees are accepted
        return str(g) == str(p)
    if not free:
        vg, vp = _evalf(g), _evalf(p)
        if vg is None or vp is None or vg == UNDEFINED and vp == UNDEFINED:
            return None
        if UNDEFINED in (vg, vp):
            return False
        return _close(vg[0], vp[0])
    if len(free) > 8:
        return None
    valid = 0
    for i, pt in enumerate(_points(free, 8, 1234)):
        vg, vp = _evalf(g, pt), _evalf(p, pt)
        if vg is None or vp is None or vg == UNDEFINED and vp == UNDEFINED:
            continue
        if UNDEFINED in (vg, vp):
            return False  # defined on one side only
        if any(v != v or abs(v) == float("inf") for v in (vg[1], vp[1])):
            continue
        if not _close(vg[0], vp[0]):
            return False
        valid += 1
    return True if valid >= 2 else None


_HEAVY = None


def _evaluable(e) -> bool:
    """False for sums / products with symbolic or huge ranges, integrals, limits, derivatives: evaluating them
    numerically can take seconds."""
    sympy = _SYMPY
    global _HEAVY
    if _HEAVY is None:
        _HEAVY = (sympy.Integral, sympy.Limit, sympy.Derivative)
    try:
        if e.has(*_HEAVY):
            return False
        for node in e.atoms(sympy.Sum, sympy.Product):
            for lim in node.limits:
                if len(lim) != 3 or not (lim[1].is_Integer and lim[2].is_Integer) or abs(int(lim[2]) - int(lim[1])) > 2000:
                    return False
    except Exception:
        return False
    return True


def _rel_expr(r):
    return r.lhs - r.rhs


def equation_equal(g, p) -> Optional[bool]:
    """Two equations are equal when lhs - rhs agree up to a nonzero constant factor."""
    sympy = _SYMPY
    eg, ep = _rel_expr(g), _rel_expr(p)
    if not (_evaluable(eg) and _evaluable(ep)):
        return str(g) == str(p)
    try:
        free = sorted(eg.free_symbols | ep.free_symbols, key=str)
    except Exception:
        return None
    if not free:
        return None
    ratio = None
    valid = 0
    for pt in _points(free, 8, 99):
        vg, vp = _evalf(eg, pt), _evalf(ep, pt)
        if vg is None or vp is None or UNDEFINED in (vg, vp):
            continue
        if abs(vp[1]) < 1e-12:
            if abs(vg[1]) > 1e-12:
                return False
            continue
        r = vg[0] / vp[0]
        if ratio is None:
            if abs(complex(r)) < 1e-12:
                return False
            ratio = r
        elif not _close(r, ratio):
            return False
        valid += 1
        if valid >= 3:
            return True
    return True if valid >= 2 else None


def relation_equal(g, p) -> Optional[bool]:
    """Relations: equations up to a factor; inequalities in one variable as solution sets."""
    sympy = _SYMPY
    if isinstance(g, sympy.Eq) and isinstance(p, sympy.Eq):
        return equation_equal(g, p)
    sg, sp = as_set(g), as_set(p)
    if sg is not None and sp is not None:
        return set_equal(sg, sp)
    return None


def as_set(x):
    """The solution set of a relation in one variable (or x itself if it is a set), else None."""
    sympy = _SYMPY
    if isinstance(x, sympy.Set):
        return x
    if not _is_rel(x):
        return None
    try:
        free = x.free_symbols
        if len(free) != 1:
            # |z| style: a single function of one symbol is fine too
            return None
        (v,) = free
        rels = x.args if not isinstance(x, sympy.core.relational.Relational) else (x,)
        for r in rels:
            d = (r.lhs - r.rhs).replace(sympy.Abs, lambda a: a)
            if not d.is_rational_function(v):
                return None  # trigonometric / exponential inequalities: solving them can take seconds
        v_real = sympy.Symbol(v.name, real=True)
        return x.subs(v, v_real).as_set()
    except Exception:
        return None


def set_equal(a, b) -> Optional[bool]:
    sympy = _SYMPY
    try:
        if a == b:
            return True
        if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
            return (a.left_open == b.left_open and a.right_open == b.right_open
                    and bool(expr_equal(a.start, b.start)) and bool(expr_equal(a.end, b.end)))
        if isinstance(a, sympy.FiniteSet) and isinstance(b, sympy.FiniteSet):
            return _unordered(list(a.args), list(b.args))
        d = a.symmetric_difference(b)
        if d.is_empty:
            return True
        if d.is_empty is False:
            return False
    except Exception:
        return None
    return None


def _unordered(xs, ys) -> bool:
    return all(any(expr_equal(x, y) for y in ys) for x in xs) and all(any(expr_equal(x, y) for x in xs) for y in ys)


def _mat(x):
    """Evaluate a matrix expression (sum / product of explicit matrices) to a matrix."""
    sympy = _SYMPY
    if isinstance(x, sympy.MatrixExpr) and not isinstance(x, sympy.MatrixBase):
        try:
            return x.doit()
        except Exception:
            return x
    return x


def warmup() -> None:
    """Import sympy / latex2sympy2-extended and build the antlr parser once (about 1-2 s), so that the first
    graded item does not pay for it. Worker processes call this at start."""
    _lazy()
    # one parse per grammar region, so antlr's prediction caches are filled before the first real item
    for s in ("x^{2}+\\frac{1}{2}", "\\sqrt{2}", "x \\le 3", "1 \\le |z| \\le 2", "\\{1, 2\\}", "[1, 2)",
              "\\sum_{k=0}^{n} k", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "y = 2x + 1", "\\sin(x) e^{x}"):
        parse_latex(s, True)


_DIGITS = 50


def equal(g_text: str, p_text: str, structural_only: bool = False) -> Optional[bool]:
    """Compare two cleaned LaTeX answers symbolically; None when undecidable (parse failure...).
    ``structural_only``: equal only when sympy builds the same expression (for piecewise functions)."""
    global _DIGITS
    _lazy()
    # numeric checks work with more digits when the texts carry many digits (10^{-60} must not vanish)
    _DIGITS = 50 + sum(c.isdigit() for c in g_text + p_text)
    sympy = _SYMPY
    real = not (is_complex(g_text) or is_complex(p_text))
    g = parse_latex(g_text, real)
    p = parse_latex(p_text, real)
    if g is None or p is None:
        return None
    if structural_only:
        try:
            if g == p:
                return True
            a, b = g.doit(), p.doit()
            return bool(a == b or sympy.expand(a - b) == 0)
        except Exception:
            return None
    return objects_equal(g, p)


def objects_equal(g, p) -> Optional[bool]:
    sympy = _SYMPY
    from latex2sympy2_extended.sets import FiniteSet as L2SFiniteSet
    g, p = _mat(g), _mat(p)
    try:
        if g == p:
            return True
    except Exception:
        pass
    if _is_rel(g) or _is_rel(p):
        if _is_rel(g) and _is_rel(p):
            return relation_equal(g, p)
        # assignment x = 5 against 5
        if isinstance(g, sympy.Eq) and not _is_rel(p):
            return objects_equal(g.rhs, p)
        if isinstance(p, sympy.Eq) and not _is_rel(g):
            return objects_equal(g, p.rhs)
        sg, sp = as_set(g), as_set(p)
        if sg is not None and sp is not None:
            return set_equal(sg, sp)
        return False
    if isinstance(g, (sympy.Set, L2SFiniteSet)) or isinstance(p, (sympy.Set, L2SFiniteSet)):
        if isinstance(g, sympy.Set) and isinstance(p, sympy.Set):
            return set_equal(g, p)
        return False
    if isinstance(g, sympy.Tuple) or isinstance(p, sympy.Tuple):
        if isinstance(g, sympy.Tuple) and isinstance(p, sympy.Tuple) and len(g) == len(p):
            return all(objects_equal(a, b) for a, b in zip(g, p))
        return False
    return expr_equal(g, p)
