"""Equivalence of an extracted answer with one gold answer.

:func:`answers_equal` cleans both strings (:mod:`normalize`); an answer over the size / nesting limits of
:func:`.screen.too_deep` is only compared as a string; otherwise both are split into structures
(:mod:`structure`) and compared node by node:

* tuples and bracketed lists are ordered; bare lists of solutions and ``\\{…\\}`` sets are unordered and
  duplicates do not count (``\\boxed{2}\\boxed{2}`` is ``{2}``); a two-element interval compares its brackets
  (``[a, b)`` != ``(a, b)``); ``[5, \\infty)`` answers a gold ``x \\ge 5``, but an inequality does not answer a gold
  written in interval notation (as math-verify's default);
* qualifying text is dropped first (:mod:`.qualifiers`: "only", "for all x", "where n is an integer"); two
  families of solutions in one integer parameter compare with the answer's parameter renamed to the gold's
  (``x = k\\pi`` = ``n\\pi``);
* ``x = 5`` / ``f(x) = 5`` / ``(p, q) = (3, 2)`` / ``Maximum = 2`` / ``Alice: 18`` compare by their right side
  (``y = 2`` != ``x = 2``; two word labels must agree; a gold without a variable accepts any name: ``y = 2`` =
  ``2``); function definitions compare with the answer's arguments renamed to the gold's (:mod:`.bound`:
  ``f(z) = z`` = ``f(x) = x``, ``f(z) = x`` != ``f(x) = x``); an assignment to an expression (``x + y = 2``) and
  other equations compare up to a nonzero factor (``y = 2 - x`` = ``x + y = 2``); a chain ``a = b = c`` given for a plain gold is read by its last member;
* scalars (:func:`atom_equal`): identical text; then units (different units are different answers); base-b
  numerals (``2516_8``) by digits and base; then exact arithmetic (:mod:`expr`); then, with variables, the
  random-point identity test (:mod:`identity`); then the symbolic path (:mod:`symbolic`) for what is left,
  after the pre-screen (:mod:`screen`). Floor / ceiling / mod / absolute value with variables are piecewise:
  agreeing at random points proves nothing, so they must build the same sympy expression.
* clock times (``3:00``, ``3:00 PM``, ``15:00``) compare as instants; ``3:00`` = ``3``, ``3:30`` != ``3.5``;
* shapes that differ (a number against a set, a tuple against a matrix...) are different, except a relation or
  set against an interval and two matrix expressions, which sympy decides.

Numeric rules (exact values, decimal approximations, percent, degrees): :mod:`.numeric`.
"""
from __future__ import annotations

import re


from . import bound, qualifiers, screen, structure, symbolic
from .numeric import num_equal
from .normalize import balanced, clean, short_cache, split_unit, strip_text_commands, units_conflict
from .expr import evaluate, free_vars
from .identity import equations_proportional, same_function
from .numbers import NotNumeric, TooLarge


class Undecided(Exception):
    pass


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


@short_cache(8192)
def eval_cached(s: str):
    """(Num or None, too_large_reason or None) for a cleaned atom."""
    try:
        return evaluate(s), None
    except TooLarge as e:
        return None, str(e)
    except (RecursionError, ValueError, OverflowError, ZeroDivisionError):
        return None, None


@short_cache(8192)
def parse_cached(s: str) -> structure.Node:
    return structure.parse(s)


# --------------------------------------------------------------------------------------------------------
# atoms
# --------------------------------------------------------------------------------------------------------
_WORDISH = re.compile(r"^[A-Za-z][A-Za-z\s\-']*$")
_BASE_N = re.compile(r"^(-?[0-9A-Fa-f]+)_\{?(\d{1,2})\}?$")
_SUBSCRIPTED_NUMBER = re.compile(r"\d_")
_STEP = re.compile(r"\\(?:lfloor|lceil|rfloor|rceil|floor|ceil)|\\operatorname\{(?:floor|ceil)|\\[bp]?mod|\|")


def _text_form(s: str) -> str:
    return squash(strip_text_commands(s)).replace("{", "").replace("}", "")


def atom_equal(g: str, p: str) -> tuple[bool, str]:
    """Compare two scalar answers; returns (equal, reason)."""
    if squash(g) == squash(p):
        return True, "identical"
    gv, gu = split_unit(g)
    pv, pu = split_unit(p)
    if units_conflict(gu, pu):
        return False, f"different units ({pu} vs {gu})"
    if squash(gv) == squash(pv):
        return True, "identical value"
    gt, pt = _text_form(gv), _text_form(pv)
    if gt and gt == pt:
        return True, "identical text"
    if _WORDISH.match(gt or "-") and _WORDISH.match(pt or "-"):
        if len(gt) > 1 and gt.lower() == pt.lower():
            return True, "same text"
    bg, bp = _BASE_N.match(gt), _BASE_N.match(pt)
    if bg or bp:
        if bg and bp:
            ok = bg.group(2) == bp.group(2) and bg.group(1).lstrip("0").lower() == bp.group(1).lstrip("0").lower()
        else:
            b = bg or bp
            other = pt if bg else gt
            ok = b.group(1).lstrip("0").lower() == other.lstrip("0").lower()  # subscript left out
        return ok, "same base-b numeral" if ok else "different base-b numeral"
    if _SUBSCRIPTED_NUMBER.search(gt) or _SUBSCRIPTED_NUMBER.search(pt):
        return False, "different numeral"  # 37_8 style text the symbolic parser would misread
    ng, rg = eval_cached(gv)
    np_, rp = eval_cached(pv)
    if rg or rp:
        return False, "too large to compare"
    if ng is not None and np_ is not None:
        ok = num_equal(ng, np_)
        return ok, "equal value" if ok else "different value"
    for s in (gv, pv):
        why = screen.too_complex(s)
        if why:
            return False, why + ": too large to compare"
    if (ng is None) != (np_ is None) and _WORDISH.match(gt or "-") and _WORDISH.match(pt or "-"):
        return False, "different text"
    # floor / ceil / mod / |.| with variables are piecewise: agreeing at random points proves nothing, so
    # such answers are equal only when sympy builds the same expression
    step = bool(_STEP.search(gv) or _STEP.search(pv)) and _has_vars(gv, pv)
    if step:
        squares = _nonneg_squares(gv, pv)
        if squares is not None:
            try:
                if same_function(*squares):
                    return True, "equal absolute values"
            except RecursionError:
                pass
    try:
        fast = same_function(gv, pv)
    except RecursionError:
        fast = None
    if fast is not None and not (fast and step):
        return fast, "same function" if fast else "different function"
    res = symbolic.equal(gv, pv, structural_only=step)
    if res is None:
        if _WORDISH.match(gt or "-") or _WORDISH.match(pt or "-"):
            return False, "different text"
        return False, "could not be compared"
    return bool(res), "symbolically equal" if res else "symbolically different"


def _nonneg_form(s: str):
    """The square of a whole-answer absolute value or square root, as text without either: ``|A|`` -> ``(A)^2``,
    ``\\sqrt{P}`` -> ``(P)``; None for anything else."""
    s = s.strip()
    if len(s) > 2 and s[0] == "|" and s[-1] == "|" and "|" not in s[1:-1]:
        return f"({s[1:-1]})^{{2}}"
    m = re.fullmatch(r"\\sqrt\s*\{(.*)\}", s)
    if m and balanced(m.group(1)) and "|" not in m.group(1):
        return f"({m.group(1)})"
    return None


def _nonneg_squares(gv: str, pv: str):
    """Two non-negative answers (``|A|``, ``\\sqrt{P}``) are equal exactly when their squares are, and the squares
    have no absolute value left: ``\\sqrt{a^2 - 2ab + b^2}`` = ``|b - a|``, ``|1 - \\ln x|`` = ``\\sqrt{(\\ln x - 1)^2}``."""
    a, b = _nonneg_form(gv), _nonneg_form(pv)
    if a is None or b is None or _STEP.search(a) or _STEP.search(b):
        return None
    return a, b


def _has_vars(*texts) -> bool:
    for t in texts:
        try:
            if free_vars(t):
                return True
        except NotNumeric:
            bare = re.sub(r"\\[a-zA-Z]+(?:\s*\{[a-zA-Z]*\})?", " ", t)
            if re.search(r"[a-zA-Z]", bare):
                return True
    return False


# --------------------------------------------------------------------------------------------------------
# structures
# --------------------------------------------------------------------------------------------------------
def _text_of(n: structure.Node) -> str:
    return n.text


def node_equal(g: structure.Node, p: structure.Node) -> tuple[bool, str]:
    """Compare two structure trees (gold first)."""
    if g.kind == "time" or p.kind == "time":
        return _time_equal(g, p)
    # assignments compare by their right-hand side when both sides name a quantity (x, f(x), |AB|)
    if g.kind == "assign" and p.kind == "assign":
        gl, pl = squash(g.lhs), squash(p.lhs)
        if gl != pl and re.fullmatch(r"[A-Za-z]", gl) and re.fullmatch(r"[A-Za-z]", pl):
            return False, f"different variable ({p.lhs} vs {g.lhs})"
        if gl != pl and (_OPERATOR.search(gl) or _OPERATOR.search(pl)):
            return _equations(g.text, p.text)  # "y = 2 - x" against "x + y = 2"
        gw, pw = _label_word(g.lhs), _label_word(p.lhs)
        if gw and pw and gw != pw:
            return False, f"different label ({p.lhs} vs {g.lhs})"
        renamed = bound.renamed(g.lhs, p.lhs, p.items[0].text)
        if renamed is not None:  # f(z) = z against f(x) = x: the argument is a bound variable
            ok, why = node_equal(g.items[0], parse_cached(renamed))
            return ok, "same function, argument renamed" if ok else why
        return node_equal(g.items[0], p.items[0])
    if g.kind == "assign" and p.kind != "eq":
        return node_equal(g.items[0], p)
    if p.kind == "assign" and g.kind != "eq":
        return node_equal(g, p.items[0])
    if g.kind in ("eq", "assign") and p.kind in ("eq", "assign"):
        return _equations(g.text, p.text)
    if g.kind == "eq":
        if len(g.items) >= 3:
            return node_equal(parse_cached(g.items[-1].text), p)
        return False, "gold is an equation"
    if p.kind == "eq":
        return node_equal(g, parse_cached(p.items[-1].text))
    if g.kind == "atom" and p.kind == "atom":
        if _chain_equal(g.text, p.text):
            return True, "same chain of inequalities"
        return atom_equal(g.text, p.text)
    if (p.from_ineq or p.kind == "atom" and _RELATION.search(p.text)) and not g.from_ineq and g.kind in ("seq", "union"):
        # the gold is written in interval notation; an inequality answer does not follow it (Math-Verify's
        # default); the other way round (gold inequality, interval answer) is accepted
        return False, "inequality given where an interval is expected"
    if g.kind == "seq" and p.kind == "seq":
        return _seq_equal(g, p)
    if g.kind == "union" and p.kind == "union":
        return _unordered(g.items, p.items)
    if g.kind == "seq" and g.open == "" and p.kind == "union" and all(it.from_ineq for it in g.items):
        return _unordered(g.items, p.items)  # gold "x <= -1 or x >= 1", answer a union of intervals
    if g.kind == "matrix" or p.kind == "matrix":
        return _matrix_equal(g, p)
    # one-element containers
    if g.kind in ("seq", "union") and len(g.items) == 1 and g.open in ("", "{"):
        return node_equal(g.items[0], p)
    if p.kind in ("seq", "union") and len(p.items) == 1 and p.open in ("", "{"):
        return node_equal(g, p.items[0])
    # different shapes (inequality vs interval, matrix expression vs matrix...): let sympy decide
    return _symbolic_fallback(g.text, p.text, f"different structure ({p.kind} vs {g.kind})")


_OPERATOR = re.compile(r"[-+*/^]|\\(?:cdot|times)")
_WORD_LABEL = re.compile(r"\\(?:text|textbf|mathrm|textrm|mbox)\{\s*([A-Za-z][A-Za-z '’-]*?)\s*\}|([A-Za-z][a-z]{2,})")


def _label_word(lhs: str):
    """The lower-case words of a word label (``\\text{Maximum}``, ``Alice``), None for a math name."""
    m = _WORD_LABEL.fullmatch(lhs.strip())
    return re.sub(r"\s+", " ", (m.group(1) or m.group(2))).lower() if m else None


_FLIP = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}


def _chain_equal(gt: str, pt: str) -> bool:
    """``a > b > c`` against ``c < b < a`` or ``a > b > c`` with each member equal in another form
    (``\\frac{7}{5}\\pi > 1`` = ``\\frac{7\\pi}{5} > 1``): the same relations between equal members, read in either
    direction. Only a proof of equality; anything else goes on to the other rules."""
    if not (_RELATION.search(gt) and _RELATION.search(pt)):
        return False
    rg, rp = structure.rel_split(gt), structure.rel_split(pt)
    if not rg or not rp or len(rg[0]) != len(rp[0]) or not all(o in _FLIP for o in rg[1] + rp[1]):
        return False
    (gparts, gops), (pparts, pops) = rg, rp
    if pops != gops:
        if [_FLIP[o] for o in reversed(pops)] != gops:
            return False
        pparts = pparts[::-1]
    return all(a and b and atom_equal(a, b)[0] for a, b in zip(gparts, pparts))


def _clock(n: structure.Node):
    """(seconds, am/pm mark) of a time node, or of a whole hour written as an integer (``3`` = 3:00)."""
    if n.kind == "time":
        return n.items[0], n.items[1]
    if n.kind == "atom" and re.fullmatch(r"\d{1,2}", n.text.strip()) and int(n.text) <= 24:
        return int(n.text) * 3600, ""
    return None


def _time_equal(g: structure.Node, p: structure.Node) -> tuple[bool, str]:
    """Clock times: equal instants; am/pm applied when given (12:00 am = 0:00); when only one side says am/pm
    they are compared on a 12-hour clock (``3:00 PM`` = ``3``); an integer h is h:00."""
    a, b = _clock(g), _clock(p)
    if a is None or b is None:  # "7:32" against "S_1 : S = 7:32": a ratio after all
        g2 = structure.ratio(g.text) if g.kind == "time" else g
        p2 = structure.ratio(p.text) if p.kind == "time" else p
        return node_equal(g2, p2) if "time" not in (g2.kind, p2.kind) else (False, "different")

    def on24(t):
        secs, mark = t
        return secs % 43200 + (43200 if mark == "p" else 0) if mark else secs

    x, y = on24(a), on24(b)
    if bool(a[1]) != bool(b[1]):
        x, y = x % 43200, y % 43200
    return x == y, "same time" if x == y else "different time"


_RELATION = re.compile(r"[<>]|\\(?:le|ge|lt|gt)(?![a-zA-Z])")
_REL_OR_SET = re.compile(r"[<>]|\\(?:le|ge|ne|in|cup|cap|setminus|mathbb|emptyset)(?![a-zA-Z])|\\\{")


def _symbolic_fallback(gt: str, pt: str, why: str) -> tuple[bool, str]:
    """Shapes differ. Only an interval / set answer against a relation gold, or two matrix expressions, can still
    be equal (``(-\\infty, 1)`` for ``-x > -1``, ``A + B`` vs a matrix); everything else is decided here."""
    if not gt or not pt:
        return False, why
    if not (_REL_OR_SET.search(gt) or _REL_OR_SET.search(pt) or ("\\begin{" in gt and "\\begin{" in pt)):
        return False, why
    if eval_cached(gt)[0] is not None or eval_cached(pt)[0] is not None:
        return False, why  # a plain number is never a set, a relation or a matrix
    for s in (gt, pt):
        if screen.too_complex(s):
            return False, why
    res = symbolic.equal(gt, pt)
    if res:
        return True, "symbolically equal"
    return False, why


def _equations(gt: str, pt: str) -> tuple[bool, str]:
    if squash(gt) == squash(pt):
        return True, "identical"
    for s in (gt, pt):
        why = screen.too_complex(s)
        if why:
            return False, why + ": too large to compare"
    gs, ps = structure.split_top(gt, ("=",)), structure.split_top(pt, ("=",))
    if len(gs) == 2 and len(ps) == 2:
        try:
            fast = equations_proportional((gs[0], gs[1]), (ps[0], ps[1]))
        except RecursionError:
            fast = None
        if fast is not None:
            return fast, "equivalent equations" if fast else "different equations"
    res = symbolic.equal(gt, pt)
    return bool(res), "equivalent equations" if res else "different equations"


def _seq_equal(g: structure.Node, p: structure.Node) -> tuple[bool, str]:
    ordered = g.open in "([:" and g.open != "" or p.open in "([:" and p.open != ""
    if ordered:
        if len(g.items) != len(p.items):
            return False, f"{len(p.items)} items vs {len(g.items)}"
        if (len(g.items) == 2 or ":" in (g.open, p.open)) and g.open and p.open and (g.open, g.close) != (p.open, p.close):
            return False, f"different brackets ({p.open}{p.close} vs {g.open}{g.close})"
        if len(p.items) > 2 and (p.open, p.close) in (("[", ")"), ("(", "]")):
            return False, "a tuple with mismatched brackets"  # only an interval may mix them
        for a, b in zip(g.items, p.items):
            ok, why = node_equal(a, b)
            if not ok:
                return False, why
        return True, "equal tuple"
    return _unordered(g.items, p.items)


def _unordered(gs, ps) -> tuple[bool, str]:
    """Set equality: every gold item is matched by a predicted one and every predicted item by a gold one."""
    if len(gs) * len(ps) > 400:
        return False, "list too long to compare"
    memo = {}

    def eq(i, j):
        if (i, j) not in memo:
            memo[(i, j)] = node_equal(gs[i], ps[j])[0]
        return memo[(i, j)]

    for i in range(len(gs)):
        if not any(eq(i, j) for j in range(len(ps))):
            return False, "missing an element"
    for j in range(len(ps)):
        if not any(eq(i, j) for i in range(len(gs))):
            return False, "extra element"
    return True, "equal set"


def _matrix_equal(g, p) -> tuple[bool, str]:
    def cells(n):
        if n.kind == "matrix":
            return [list(r) for r in n.items]
        if n.kind == "seq" and n.open in ("(", "[", ""):
            rows = n.items
            if rows and all(r.kind == "seq" and r.open in "([" and r.open and len(r.items) == len(rows[0].items)
                            for r in rows):
                return [list(r.items) for r in rows]  # [[1, 2], [3, 4]]: rows
            return [[x] for x in n.items]  # a tuple is a column vector
        return None
    a, b = cells(g), cells(p)
    if a is None or b is None:
        return _symbolic_fallback(g.text, p.text, "different structure")
    if len(a) != len(b) or any(len(r) != len(s) for r, s in zip(a, b)):
        # row vs column vector
        if [len(r) for r in a] == [1] * len(a) and len(b) == 1 and len(b[0]) == len(a):
            b = [[x] for x in b[0]]
        elif [len(r) for r in b] == [1] * len(b) and len(a) == 1 and len(a[0]) == len(b):
            a = [[x] for x in a[0]]
        else:
            return False, "different shape"
    for r, s in zip(a, b):
        for x, y in zip(r, s):
            ok, why = node_equal(x, y)
            if not ok:
                return False, why
    return True, "equal matrix"


# --------------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------------
def answers_equal(gold: str, pred: str) -> tuple[bool, str]:
    """Compare a predicted answer with one gold answer (raw extracted strings): cleaned, qualifying text
    removed (:mod:`.qualifiers`), then structure by structure; two families of solutions in one integer
    parameter are compared with the answer's parameter renamed to the gold's."""
    g, p = clean(gold), clean(pred)
    if not p:
        return False, "empty answer"
    if squash(g) == squash(p):
        return True, "identical"
    why = screen.too_deep(p) or screen.too_deep(g)
    if why:
        return False, why
    (g, gd), (p, pd) = qualifiers.split(g), qualifiers.split(p)
    res = _structures_equal(g, p)
    if not res[0]:
        renamed = qualifiers.family_rename(g, p, gd | pd)
        if renamed is not None and _structures_equal(g, renamed)[0]:
            return True, "same family of solutions"
    return res


def _structures_equal(g: str, p: str) -> tuple[bool, str]:
    if squash(g) == squash(p):
        return True, "identical"
    best = (False, "different")
    for ga in structure.alternatives(g):
        for pa in structure.alternatives(p):
            try:
                ok, why = node_equal(parse_cached(ga), parse_cached(pa))
            except RecursionError:
                ok, why = False, "nesting too deep"
            if ok:
                return True, why
            best = (False, why)
    return best
