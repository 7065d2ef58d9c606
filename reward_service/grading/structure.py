"""Split a cleaned answer into its structure: lists, tuples, sets, intervals, unions, matrices, equations.

:func:`parse` returns a small tree of :class:`Node` objects:

* ``atom``: a scalar expression (text), compared by :mod:`compare`.
* ``seq``: items with their brackets: ``(``…``)`` tuple / open interval, ``[``…``]``, mixed ``[``…``)``
  intervals, ``{`` for ``\\{…\\}`` sets, ``""`` for a bare list ``1, 2, 3`` (a list of solutions).
* ``union``: ``A \\cup B``.
* ``matrix``: rows of items (``pmatrix``, ``bmatrix``, ``matrix``, ``array``...).
* ``assign``: ``x = 5``, ``(p, q) = (3, 2)``, ``f(x) = 2x+3``: a left side made only of symbols; compared by its
  right side. A chain ``x = 5+5+1 = 11`` keeps its last member; ``x = 1/3 \\approx 0.33`` keeps the exact part.
* ``eq``: any other equation (``2x + 4y = 3``), compared up to a nonzero factor.
* set-builder notation ``\\{x \\mid x > 1\\}`` is read as the set its condition describes.
* ``time``: a clock time ``h:mm`` (optionally ``:ss`` and am/pm); items are (seconds, "a" / "p" / "").

A list of assignments to distinct variables (``y = 2, x = 1``) is read in the variables' order (``x, y``).

Separators: ``,`` and ``;`` at top level, "and"/"or". ``1,000`` (groups of three digits) is one number;
``1,5`` (and ``0,4``: MATH golds list the solutions 0 and 4 so) is read both as the list ``1, 5`` and the decimal
``1.5`` (:func:`alternatives`). A labelled value (``Alice: 18``, ``\\text{Total:} 5``, ``Maximum = 2``) is an
``assign`` node: it compares by its value.

Signs (:func:`pm_variants`): ``\\pm`` / ``\\mp`` stand for the answers they expand to, wherever they are:
``a \\pm b`` is the list ``a + b, a - b`` (``\\frac{1 \\pm \\sqrt5}{2}`` too); inside a list or a set the
expansions join it (``\\{1 \\pm \\sqrt5, -2\\}`` has three elements); a tuple with signs is the list of the tuples
it stands for: every combination when only ``\\pm`` occurs (``(\\pm 1, 0, \\pm 2)`` is four points), one sign for
all when ``\\mp`` occurs too (``(\\pm 1, \\mp 1)`` is ``(1, -1), (-1, 1)``); several ``\\pm`` in one expression are
independent (``\\pm\\sqrt2 \\pm \\sqrt3``: four values), unless a ``\\mp`` ties them. At most ``MAX_ITEMS`` variants.

A single-variable inequality with numeric bounds (``x \\ge 5``, ``-2 < x \\le 7``, ``x \\ne 3``) becomes its
interval(s), so it compares equal to the interval notation.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Optional

from .normalize import strip_outer_text

MAX_ITEMS = 64


@dataclass
class Node:
    kind: str
    text: str = ""
    items: list = field(default_factory=list)
    open: str = ""
    close: str = ""
    lhs: str = ""
    from_ineq: bool = False  # an interval written as an inequality (x >= 5)
    pm: bool = False         # a bare list that a \pm / \mp expanded to (it joins an enclosing list or set)


_OPEN = "([{"
_CLOSE = ")]}"


def split_top(s: str, seps: tuple[str, ...]) -> list[str]:
    """Split s at separators that are outside every bracket / brace / environment."""
    if not any(sep in s for sep in seps):
        return [s.strip()]
    parts = []
    depth = 0
    env = 0
    start = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if s.startswith("\\begin{", i):
                env += 1
            elif s.startswith("\\end{", i):
                env -= 1
            elif s.startswith("\\{", i) or s.startswith("\\}", i):
                depth += 1 if s[i + 1] == "{" else -1
                i += 2
                continue
            # a command: check separators that are commands
            for sep in seps:
                if sep.startswith("\\") and depth == 0 and env == 0 and s.startswith(sep, i) and \
                        not (i + len(sep) < n and s[i + len(sep)].isalpha()):
                    parts.append(s[start:i])
                    i += len(sep)
                    start = i
                    break
            else:
                i += 1
                while i < n and s[i].isalpha():
                    i += 1
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and env == 0:
            for sep in seps:
                if not sep.startswith("\\") and s.startswith(sep, i):
                    parts.append(s[start:i])
                    i += len(sep)
                    start = i
                    break
            else:
                i += 1
                continue
            continue
        i += 1
    parts.append(s[start:])
    return [p.strip() for p in parts]


def _wrapped(s: str) -> Optional[tuple[str, str, str]]:
    """If s is one bracketed group spanning the whole string, return (open, inner, close)."""
    if len(s) < 2:
        return None
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = s[2:-2]
        if _depth_ok(inner):
            return "{", inner, "}"
        return None
    if s[0] in "([{" and s[-1] in ")]}":
        inner = s[1:-1]
        if _depth_ok(inner):
            return s[0], inner, s[-1]
    return None


def _depth_ok(s: str) -> bool:
    depth = 0
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
        else:
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE:
                depth -= 1
            i += 1
        if depth < 0:
            return False
    return depth == 0


_THOUSANDS = re.compile(r"^[+-]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
_RATIO = re.compile(r"^\s*[-+]?\d+(?:\.\d+)?(?:\s*:\s*[-+]?\d+(?:\.\d+)?)+\s*$")
_DEC_COMMA = re.compile(r"^([+-]?\d+),(\d+)$")
_MATRIX = re.compile(r"^\\begin\{(pmatrix|bmatrix|Bmatrix|vmatrix|Vmatrix|matrix|smallmatrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.S)
_IN_PREFIX = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*\\in\s*")
_SYMBOLIC_LHS = re.compile(
    r"^(?:[A-Za-z](?:_\{?[\w,]+\}?|_\d)?'*|\\[a-zA-Z]+(?:_\{?\w+\}?)?|[A-Za-z]{1,6}(?:_\{?\w+\}?)?|[A-Za-z][a-z]{2,19}|"
    r"\\(?:text|textbf|mathrm|textrm|mbox)\{\s*[A-Za-z][A-Za-z '’-]{0,40}\}|"
    r"[A-Za-z]+\s*\([A-Za-z0-9,\s]*\)|\|[A-Za-z\s]+\||\\frac\{[A-Za-z]+\}\{[A-Za-z]+\}|"
    r"[A-Za-z](?:_\{?\w+\}?)?\s*:\s*[A-Za-z](?:_\{?\w+\}?)?|[A-Z]{1,4}|\\overline\{[A-Z]+\}|"
    r"[A-Za-z]_?\{?\w*\}?\s*\+\s*[A-Za-z]_?\{?\w*\}?|"
    r"\((?:\s*[A-Za-z](?:_\{?\w+\}?)?\s*,)+\s*[A-Za-z](?:_\{?\w+\}?)?\s*\))$"
)


def is_symbolic_lhs(lhs: str) -> bool:
    """``x``, ``f(x)``, ``|AB|``, ``(p,q)``, ``V_{1}:V_{2}``, ``\\frac{NO}{BO}``, ``Maximum``, ``\\text{the area}``:
    names, not values."""
    return bool(_SYMBOLIC_LHS.match(lhs.strip())) and not re.search(r"\d", re.sub(r"_\{?\w+\}?", "", lhs))


def rel_split(s: str):
    """Split at top-level relation signs; returns (parts, ops) or None when there is no relation."""
    parts = split_top(s, ("=", "<", ">", "\\le", "\\ge", "\\ne", "\\approx"))
    if len(parts) == 1:
        return None
    ops = []
    # recover the operators in order
    rest = s
    for p in parts[:-1]:
        idx = rest.find(p) + len(p) if p else 0
        rest = rest[idx:]
        m = re.match(r"\s*(=|<|>|\\le|\\ge|\\ne|\\approx)", rest)
        if not m:
            return None
        ops.append(m.group(1))
        rest = rest[m.end():]
    return parts, ops


def _num_like(s: str) -> bool:
    return bool(re.fullmatch(r"[-+]?\s*(?:\d+(?:\.\d+)?|\.\d+|\\frac\{[-\d.]+\}\{[\d.]+\}|\d+/\d+|\\infty|[-+]?\\sqrt\{\d+\})", s.strip()))


def _ineq_to_intervals(parts, ops) -> Optional[Node]:
    """``x \\ge 5`` -> ``[5, \\infty)``; ``a < x \\le b`` -> ``(a, b]``; ``x \\ne 3`` -> two intervals."""
    var = re.compile(r"^(?:[A-Za-z](?:_\{?\w+\}?)?|[A-Za-z]\s*\(\s*[A-Za-z]\s*\))$")
    if len(parts) == 2 and ops[0] in ("<", ">", "\\le", "\\ge", "\\ne"):
        a, b = parts
        op = ops[0]
        if var.match(b) and _num_like(a):
            a, b = b, a
            op = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le", "\\ne": "\\ne"}[op]
        if not (var.match(a) and _num_like(b)):
            return None
        if op == "<":
            return Node("seq", items=[Node("atom", "-\\infty"), Node("atom", b)], open="(", close=")")
        if op == "\\le":
            return Node("seq", items=[Node("atom", "-\\infty"), Node("atom", b)], open="(", close="]")
        if op == ">":
            return Node("seq", items=[Node("atom", b), Node("atom", "\\infty")], open="(", close=")")
        if op == "\\ge":
            return Node("seq", items=[Node("atom", b), Node("atom", "\\infty")], open="[", close=")")
        return Node("union", items=[
            Node("seq", items=[Node("atom", "-\\infty"), Node("atom", b)], open="(", close=")"),
            Node("seq", items=[Node("atom", b), Node("atom", "\\infty")], open="(", close=")")])
    if len(parts) == 3 and var.match(parts[1]) and _num_like(parts[0]) and _num_like(parts[2]):
        o1, o2 = ops
        if o1 in ("<", "\\le") and o2 in ("<", "\\le"):
            return Node("seq", items=[Node("atom", parts[0]), Node("atom", parts[2])],
                        open="(" if o1 == "<" else "[", close=")" if o2 == "<" else "]")
        if o1 in (">", "\\ge") and o2 in (">", "\\ge"):
            return Node("seq", items=[Node("atom", parts[2]), Node("atom", parts[0])],
                        open="(" if o2 == ">" else "[", close=")" if o1 == ">" else "]")
    return None


# "Alice: 18" / "\text{Alice:} 18" / "\text{Alice}: 18": a capitalised word or a \text label ("x:y" is a ratio)
_COLON_LABEL = re.compile(r"^(?:\\(?:text|textbf|mathrm|textrm|mbox)\{\s*(?P<t>[A-Za-z][A-Za-z '’-]{0,40}?)\s*(?P<c1>:)?\s*\}|"
                          r"(?P<w>[A-Z][a-z]{2,19}))\s*(?(c1)|:)\s*(?P<v>[^:\s].*)$")
_SET_BUILDER = re.compile(r"^\\\{\s*([A-Za-z])\s*(?:\||\\mid|:)\s*(.+?)\s*\\\}$")


def parse(s: str, depth: int = 0) -> Node:
    """Structure of a cleaned answer string (see the module docstring); every node keeps its text."""
    s = _IN_PREFIX.sub("", s.strip())
    sb = _SET_BUILDER.match(s)
    if sb and depth < 12:  # {x | x > 1}: the set of the condition, written as a set (not an inequality)
        n = parse(re.sub(r"\\text\{\s*(?:or)\s*\}|(?<![A-Za-z])or(?![A-Za-z])", " or ", sb.group(2)), depth + 1)
        n.from_ineq = False
        for it in n.items if n.kind == "seq" and n.open == "" else []:
            it.from_ineq = False
        return n if n.kind != "seq" or n.open != "" else Node("union", text=s, items=n.items)
    n = _parse(s, depth)
    if not n.text:
        n.text = s
    return n


def _parse(s: str, depth: int = 0) -> Node:
    s = s.strip()
    if depth > 12 or len(s) > 5000:
        return Node("atom", s)
    s = _IN_PREFIX.sub("", s)
    # top-level "or"/"and" words and \text{and} are list separators
    s2 = re.sub(r"\\text\{\s*(?:and|or)\s*\}|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z])|(?<=[\d)}])(?:or|and)(?=[A-Z(\\])", ";", s)
    # union
    parts = split_top(s2, ("\\cup",))
    if len(parts) > 1:
        return Node("union", items=[parse(p, depth + 1) for p in parts if p][:MAX_ITEMS])
    # lists: ';' outside, ',' inside when both occur (p=5,q=2;p=7,q=2)
    semi = [p for p in split_top(s2, (";",)) if p.strip()]
    if len(semi) > 1:
        if any(_all_assignments(p) for p in semi):
            return Node("seq", items=[_solution(p, depth) for p in semi][:MAX_ITEMS], open="", close="")
        items = []
        for p in semi:
            sub = parse(p, depth + 1)
            if sub.kind == "seq" and sub.open == "":
                items.extend(sub.items)
            else:
                items.append(sub)
        return Node("seq", items=items[:MAX_ITEMS], open="", close="")
    s = s2.replace(";", ",")
    if _THOUSANDS.match(s):
        return Node("atom", s.replace(",", ""))
    commas = split_top(s, (",",))
    if len(commas) > 1:
        commas = [c for c in commas if c]
        names = [c.split("=")[0].strip() for c in commas]
        if all(_is_assignment(c) for c in commas) and len(set(names)) == len(commas) and \
                all(re.fullmatch(r"[A-Za-z](?:_\{?\w+\}?)?", n) for n in names):
            # "y = 2, x = 1": one solution named by its variables, read in the variables' order (x, y)
            commas = [c for _, c in sorted(zip(names, commas))]
        return Node("seq", items=_joined([parse(c, depth + 1) for c in commas]), open="", close="")
    if s in ("\\{\\}", "\\{ \\}"):
        return Node("seq", items=[], open="{", close="}")
    lab = _COLON_LABEL.match(s) if ":" in s else None
    if lab:  # "Alice: 18", "\text{Total:} 5": a labelled value
        return Node("assign", lhs=lab.group("w") or "\\text{" + lab.group("t") + "}",
                    items=[parse(strip_outer_text(lab.group("v")), depth + 1)],
                    text=s)
    if ":" in s:
        tm = clock_time(s)
        if tm is not None:
            return Node("time", text=s, items=list(tm))
    if ":" in s and _RATIO.match(s):
        return ratio(s)
    w = _wrapped(s)
    if w:
        op, inner, cl = w
        inner_items = split_top(inner, (",", ";"))
        if len(inner_items) > 1 or op == "{" and s.startswith("\\{"):
            if op == "{" and not s.startswith("\\{"):
                return parse(inner, depth + 1)
            items = [parse(x, depth + 1) for x in inner_items if x or op == "{"]
            if op != "{" and any(it.pm for it in items):
                return _sign_tuples(items, op, cl, inner)
            return Node("seq", items=_joined(items), open=op, close=cl)
        if (op, cl) in (("(", ")"), ("{", "}"), ("[", "]")):
            return parse(inner, depth + 1)
    m = _MATRIX.match(s)
    if m and "\\begin{" not in m.group(2) and "\\end{" not in m.group(2):
        body = m.group(2).strip()
        rows = [r for r in re.split(r"\\\\", body) if r.strip() and not re.fullmatch(r"\s*\\hline\s*", r)]
        return Node("matrix", items=[[parse(c, depth + 1) for c in split_top(r, ("&",))] for r in rows][:MAX_ITEMS],
                    lhs=m.group(1))
    variants = pm_variants(s)
    if variants:
        return Node("seq", items=[parse(v, depth + 1) for v in variants], open="", close="", pm=True)
    # relations
    rel = rel_split(s)
    if rel:
        parts, ops = rel
        if "\\approx" in ops:
            # "x = 1/3 \approx 0.33" and "2/3 \approx 0.67" keep the exact part; "x \approx 11" the value
            k = ops.index("\\approx")
            head = parts[: k + 1]
            if k > 0 and all(o == "=" for o in ops[:k]):
                return parse(" = ".join(head), depth + 1)
            if k == 0 and not is_symbolic_lhs(parts[0]):
                return parse(parts[0], depth + 1)
            return parse(parts[-1], depth + 1)
        if all(o == "=" for o in ops):
            if is_symbolic_lhs(parts[0]) and parts[-1]:
                return Node("assign", lhs=parts[0], items=[parse(strip_outer_text(parts[-1]), depth + 1)], text=s)
            return Node("eq", text=s, items=[Node("atom", p) for p in parts])
        iv = _ineq_to_intervals(parts, ops)
        if iv is not None:
            iv.from_ineq = True
            return iv
        return Node("atom", s)
    return Node("atom", s)


_SIGN = re.compile(r"\\(pm|mp)(?![a-zA-Z])")


def pm_variants(s: str) -> Optional[list[str]]:
    """The texts a ``\\pm`` / ``\\mp`` expression stands for (module docstring), or None when there is none."""
    if "\\pm" not in s and "\\mp" not in s:
        return None
    signs = _SIGN.findall(s)
    if not signs:
        return None
    if "mp" in signs:
        patterns = [(1,) * len(signs), (-1,) * len(signs)]  # \mp ties the signs: one choice for all
    elif 2 ** len(signs) <= MAX_ITEMS:
        patterns = list(itertools.product((1, -1), repeat=len(signs)))
    else:
        return None
    out = []
    for pat in patterns:
        it = iter(pat)
        out.append(_SIGN.sub(lambda m: "+" if (next(it) > 0) == (m.group(1) == "pm") else "-", s))
    return out


def _joined(items: list) -> list:
    """List / set items with the expansions of their signs joined in (``1 \\pm \\sqrt5, -2``: three items)."""
    out = []
    for it in items:
        out.extend(it.items if it.pm and it.kind == "seq" else [it])
    return out[:MAX_ITEMS]


def _sign_tuples(items: list, op: str, cl: str, inner: str) -> Node:
    """``(\\pm 1, 0, \\pm 2)``: the tuples the signs stand for (module docstring), as a bare list."""
    choices = [it.items if it.pm and it.kind == "seq" else [it] for it in items]
    if "\\mp" in inner and all(len(c) in (1, 2) for c in choices):
        combos = [[c[k] if len(c) == 2 else c[0] for c in choices] for k in (0, 1)]  # one sign for all
    else:
        total = 1
        for c in choices:
            total *= len(c)
        if total > MAX_ITEMS:
            return Node("atom", f"{op}{inner}{cl}")
        combos = [list(c) for c in itertools.product(*choices)]
    return Node("seq", items=[Node("seq", items=c, open=op, close=cl) for c in combos], open="", close="", pm=True)


def ratio(s: str) -> Node:
    """``2:3`` as a ratio (items compared in order and exactly)."""
    return Node("seq", text=s, items=[Node("atom", x.strip()) for x in s.split(":")], open=":", close=":")


_TIME = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?\s*(?:([AaPp])\.?\s*[Mm]\.?)?$")


def clock_time(s: str) -> Optional[tuple[int, str]]:
    """``3:00``, ``15:30``, ``3:00 \\text{ PM}``, ``7:05:30 am`` -> (seconds after 0:00 on the clock shown, "a" / "p" / "")."""
    m = _TIME.match(re.sub(r"\\(?:text|mathrm|mbox|textrm)\s*\{([^{}]*)\}", r" \1 ", s).strip())
    if not m or int(m.group(1)) > 24:
        return None
    secs = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
    return secs, (m.group(4) or "").lower()


def _all_assignments(p: str) -> bool:
    items = split_top(p, (",",))
    return len(items) > 1 and all(_is_assignment(i) for i in items)


def _is_assignment(c: str) -> bool:
    parts = split_top(c, ("=",))
    return len(parts) == 2 and is_symbolic_lhs(parts[0])


def _solution(p: str, depth: int) -> Node:
    """``p=5,q=2`` -> the tuple ``(5, 2)``; otherwise the plain structure."""
    items = split_top(p, (",",))
    if len(items) > 1 and all(_is_assignment(i) for i in items):
        return Node("seq", items=[parse(split_top(i, ("=",))[1], depth + 1) for i in items], open="(", close=")")
    return parse(p, depth + 1)


_CHOICE_VALUE = re.compile(r"^(?:\\text(?:bf)?\{)?\(\s*[A-E]\s*\)\}?\s*(.+)$")


def alternatives(s: str) -> list[str]:
    """Readings of an ambiguous answer: ``1,5`` and ``0,4`` are the list and the decimal comma;
    ``\\textbf{(B)} 12`` (a choice with its value) is also read as ``12``."""
    m = _CHOICE_VALUE.match(s.strip())
    if m:
        return [s, m.group(1)]
    m = _DEC_COMMA.match(s.strip())
    if m and not _THOUSANDS.match(s.strip()):
        return [s, f"{m.group(1)}.{m.group(2)}"]  # "0,4" too: MATH golds list the solutions 0 and 4 so
    return [s]
