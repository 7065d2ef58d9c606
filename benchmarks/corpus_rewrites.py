"""The rewriting classes of the generated grader corpus (see ``benchmarks/grader_corpus.py`` for what each
class does): every class turns a gold into should-accept rewritings and should-reject near misses."""
from __future__ import annotations

import random
import re
import zlib
from fractions import Fraction
from typing import Callable, Optional

from benchmarks.corpus_golds import fmt, items, perturb, split_top, value, wrapped

ACCEPT, REJECT = "accept", "reject"

Case = tuple[str, str, str]  # (expected, completion, note)


_FORMATS = [
    "Working through the problem step by step gives the result.\n\n\\boxed{{{a}}}",
    "Combining the cases, the final answer is $\\boxed{{{a}}}$.",
    "<think>Check the cases one by one.</think>\n<answer>{a}</answer>",
    "Final Answer: The final answer is ${a}$. I hope it is correct.",
    "**Final Answer**\n\\[ \\boxed{{{a}}} \\]",
    "综上所述，答案是 $\\boxed{{{a}}}$。",
]


def _box(a: str) -> str:
    """The answer in one of six answer formats (box, phrase, answer tag, Minerva, markdown, Chinese), chosen by
    a checksum of the answer (deterministic)."""
    return _FORMATS[zlib.crc32(a.encode()) % len(_FORMATS)].format(a=a)


def c_spacing(g: str, rng: random.Random) -> list[Case]:
    wraps = [lambda a: f"\\boxed{{\\,{a}\\,}}", lambda a: f"\\boxed{{\\;{a}}}", lambda a: f"\\boxed{{\\quad {a} \\quad}}",
             lambda a: f"\\ {a}\\ ", lambda a: f"$\\,{a}\\,$", lambda a: f"The final answer is $\\;{a}\\;$.",
             lambda a: f"The answer is \\(\\ {a}\\ \\).", lambda a: f"\\boxed{{\\ {a}\\ }}"]
    its = items(g)
    w = perturb(g, rng)
    out = []
    if its and rng.random() < 0.5:
        sep = rng.choice([",\\,", ",\\;", ",\\quad ", ",\\ "])
        out.append((ACCEPT, _box(sep.join(its)), "list separators"))
        if w:
            out.append((REJECT, _box(sep.join(split_top(w)) if items(w) else w), "list separators, wrong"))
        return out
    f = rng.choice(wraps)
    out.append((ACCEPT, f(g), "wrapped"))
    if w:
        out.append((REJECT, f(w), "wrapped, wrong"))
    return out


def _sized(g: str, rng: random.Random) -> Optional[str]:
    pairs = [("\\left(", "\\right)"), ("\\big(", "\\big)"), ("\\Bigl(", "\\Bigr)"), ("\\bigg(", "\\bigg)")]
    lo, ro = rng.choice(pairs)
    if "\\left" in g or not re.search(r"[(\[|]|\\\{", g):
        return None
    s = g.replace("\\{", lo[:-1] + "\\{").replace("\\}", ro[:-1] + "\\}")
    s = re.sub(r"(?<!\\)\(", lambda m: lo, s)
    s = re.sub(r"(?<!\\)\)", lambda m: ro, s)
    s = re.sub(r"(?<![\\a-z])\[", lambda m: lo[:-1] + "[", s)
    s = re.sub(r"(?<![\\a-z])\]", lambda m: ro[:-1] + "]", s)
    return s if s != g else None


def c_brackets(g: str, rng: random.Random) -> list[Case]:
    s = _sized(g, rng)
    if s is None:
        return []
    out = [(ACCEPT, rng.choice([_box(s), s, f"The final answer is ${s}$."]), "sized brackets")]
    w = perturb(g, rng)
    ws = _sized(w, rng) if w else None
    if ws:
        out.append((REJECT, _box(ws), "sized brackets, wrong"))
    return out


_LEADS = [
    "We combine the two cases and simplify the expression.",
    "Combinando los dos casos y simplificando, obtenemos:",
    "En combinant les deux cas et en simplifiant, on obtient :",
    "Fasst man beide Fälle zusammen und vereinfacht, ergibt sich:",
    "综合两种情况并化简，得到",
    "Объединяя оба случая и упрощая, получаем:",
]


def c_display(g: str, rng: random.Random) -> list[Case]:
    lead = rng.choice(_LEADS)
    form = rng.choice(["\\[\n{a}\n\\]", "\\[ {a} \\]", "$$ {a} $$", "\\[\n\\{a}\n\\]".replace("\\{a}", "{a}")])
    single = value(g) is not None and rng.random() < 0.4
    body = (lambda a: f"x = {a}") if single else (lambda a: a)
    out = [(ACCEPT, f"{lead}\n{form.format(a=body(g))}", "display block at the end")]
    w = perturb(g, rng)
    if w:
        out.append((REJECT, f"{lead}\n{form.format(a=body(w))}", "display block, wrong"))
    out.append((REJECT, f"{lead}\n{form.format(a=body(g))}\nNext we need to check the boundary case, where",
                "display block followed by more reasoning"))
    return out


_LABELS = [(["\\text{Maximum}", "\\text{Minimum}"], " = "), (["Maximum", "Minimum"], " = "),
           (["Alice", "Bob", "Carol", "Dave"], ": "), (["a_1", "a_2", "a_3", "a_4"], " = "),
           (["x_1", "x_2", "x_3", "x_4"], " = "), (["\\text{first}", "\\text{second}", "\\text{third}", "\\text{fourth}"], " = ")]


def _labelled(vals: list[str], rng: random.Random) -> Optional[str]:
    names, sep = rng.choice([lab for lab in _LABELS if len(lab[0]) >= len(vals)])
    return ", ".join(f"{n}{sep}{v}" for n, v in zip(names, vals))


def c_labelled(g: str, rng: random.Random) -> list[Case]:
    its = items(g)
    ctx = rng.choice([lambda a: a, _box, lambda a: f"The answer is {a}."])
    if its and 2 <= len(its) <= 4:
        out = [(ACCEPT, ctx(_labelled(its, rng)), "labelled values")]
        k = rng.randrange(len(its))
        w = perturb(its[k], rng)
        if w:
            out.append((REJECT, ctx(_labelled(its[:k] + [w] + its[k + 1:], rng)), "labelled values, one wrong"))
        return out
    if its or wrapped(g) or re.search(r"[=<>]|\\(?:le|ge|leq|geq|geqslant|leqslant|ne|in)(?![a-z])", g):
        return []
    w = perturb(g, rng)
    out = [(ACCEPT, ctx(rng.choice(["\\text{Area} = ", "Total: ", "n = ", "\\text{the value} = "]) + g), "one labelled value")]
    if w:
        out.append((REJECT, ctx(_labelled([w, g], rng)), "two labelled values, the gold is the last one"))
    return out


def _pm_pairs(its: list[str]) -> Optional[list[str]]:
    """``v, -v`` -> ``\\pm v`` and ``a + b, a - b`` -> ``a \\pm b`` (None when no pair is found)."""
    flat = [x.replace(" ", "") for x in its]
    partner = {}
    for i, x in enumerate(its):
        m = re.match(r"^(.+?[^\s(^{_])\s*\+\s*(.+)$", x)
        for j, y in enumerate(flat):
            if i == j or i in partner or j in partner:
                continue
            if y == "-" + flat[i]:
                partner[i], partner[j] = ("\\pm " + x), None
            elif m and "(" not in m.group(1) and y == (m.group(1) + "-" + m.group(2)).replace(" ", ""):
                partner[i], partner[j] = f"{m.group(1)} \\pm {m.group(2)}", None
    if not partner:
        return None
    return [partner[i] if i in partner else x for i, x in enumerate(its) if partner.get(i, x) is not None]


def _pm_tuples(its: list[str]) -> Optional[str]:
    """``(3,2),(-3,2),(3,-2),(-3,-2)`` -> ``(\\pm 3, \\pm 2)`` when the tuples are all the sign choices."""
    rows = []
    for t in its:
        w = wrapped(t)
        if not w or w[0] != "(" or w[2] != ")":
            return None
        rows.append([x.replace(" ", "") for x in w[1]])
    if len({len(r) for r in rows}) != 1 or len(rows) < 2:
        return None
    cols = []
    for k in range(len(rows[0])):
        vals = {r[k] for r in rows}
        pos = {v.lstrip("-") for v in vals}
        if len(vals) == 1:
            cols.append(rows[0][k])
        elif len(vals) == 2 and len(pos) == 1 and pos.pop() not in ("0",):
            cols.append("\\pm " + rows[0][k].lstrip("-"))
        else:
            return None
    if 2 ** sum(c.startswith("\\pm") for c in cols) != len({tuple(r) for r in rows}):
        return None
    return "(" + ", ".join(cols) + ")"


def c_pm(g: str, rng: random.Random) -> list[Case]:
    out = []
    if "\\pm" in g:  # the gold's own \pm: the answer lists both signs
        m = re.fullmatch(r"(.*?)(-?[^,{}]*?)\s*\\pm\s*([^,{}]+?)(\s*,.*|\\\}.*|)", g)
        if m:
            a, b = m.group(2).strip(), m.group(3).strip()
            both = f"{a} + {b}, {a} - {b}" if a else f"{b}, -{b}"
            out.append((ACCEPT, _box(m.group(1) + both + m.group(4)), "the gold's \\pm expanded"))
            out.append((REJECT, _box(m.group(1) + (f"{a} + {b}" if a else b) + m.group(4)), "one sign of the gold's \\pm"))
        return out
    its = items(g)
    if not its:
        v = value(g)
        if v is not None and v > 0:
            out.append((REJECT, _box(f"\\pm {g}"), "\\pm v for a gold v"))
        return out
    tup = _pm_tuples(its)
    if tup:
        out.append((ACCEPT, _box(tup), "sign choices of a tuple"))
        m = re.search(r"\\pm ", tup)
        out.append((REJECT, _box(tup[:m.start()] + tup[m.end():]), "a tuple with one \\pm left out"))
        return out
    pm = _pm_pairs(its)
    if pm:
        form = rng.choice(["list", "set", "x="])
        body = ", ".join(pm)
        acc = {"list": body, "set": f"\\{{{body}\\}}", "x=": f"x = {body}"}[form]
        out.append((ACCEPT, _box(acc), f"\\pm in a {form}"))
        k = next(i for i, x in enumerate(pm) if "\\pm" in x)
        rej = pm[:k] + [pm[k].replace("\\pm ", "").replace(" \\pm ", " + ")] + pm[k + 1:]
        out.append((REJECT, _box(", ".join(rej)), "one sign of a pair left out"))
    return out


def _definition(g: str) -> Optional[re.Match]:
    """``f(x) = E`` with one definition (not a list of them)."""
    return re.fullmatch(r"([a-zA-Z])\(([a-z])\)\s*=\s*(.+)", g) if len(split_top(g)) == 1 else None


_PARAM_Q = ["\\text{ for all positive integers } n", ",\\ n \\in \\mathbb{N}", "\\text{ for every integer } n \\ge 1"]


def c_qualifier(g: str, rng: random.Random) -> list[Case]:
    w = perturb(g, rng)
    out = []
    fm = _definition(g)
    if fm:
        v = fm.group(2)
        q = rng.choice([f"\\text{{ for all }} {v} \\in \\mathbb{{R}}", f"\\text{{ for all real }} {v}",
                        f"\\quad \\forall {v}", f"\\text{{ for every }} {v}"])
        out.append((ACCEPT, _box(g + q), "for all x"))
        if w:
            out.append((REJECT, _box(w + q), "for all x, wrong"))
        return out
    if re.search(r"(?<![a-zA-Z\\])n(?![a-zA-Z])", g) and not items(g):
        q = rng.choice(_PARAM_Q)
        out.append((ACCEPT, _box(g + q), "for all n"))
        if w:
            out.append((REJECT, _box(w + q), "for all n, wrong"))
        return out
    if items(g) or re.search(r"[=<>]|\\(?:le|ge|leq|geq|geqslant|leqslant|ne|in)(?![a-z])", g):
        return []
    form = rng.choice(["\\text{only } {a}", "{a} \\text{ only}", "x = {a} \\text{ only}", "{a} \\text{ (only)}"])
    out.append((ACCEPT, _box(form.replace("{a}", g)), "only"))
    if w:
        out.append((REJECT, _box(form.replace("{a}", w)), "only, wrong"))
        out.append((REJECT, _box(f"{g} \\text{{ or }} {w}"), "hedge"))
    return out


_FRESH = "tzuswyx"


def _rename(expr: str, old: str, new: str) -> str:
    return re.sub(r"(?<![a-zA-Z\\])" + old + r"(?![a-zA-Z])", new, expr)


def c_rename(g: str, rng: random.Random) -> list[Case]:
    fm = _definition(g)
    out = []
    if fm:
        f, v, e = fm.groups()
        new = next((c for c in rng.sample(_FRESH, len(_FRESH)) if c != v and not re.search(
            r"(?<![a-zA-Z\\])" + c + r"(?![a-zA-Z])", e) and c != f), None)
        if new is None:
            return []
        out.append((ACCEPT, _box(f"{f}({new}) = {_rename(e, v, new)}"), "bound variable renamed"))
        if re.search(r"(?<![a-zA-Z\\])" + v + r"(?![a-zA-Z])", e):
            out.append((REJECT, _box(f"{f}({new}) = {e}"), "left side renamed alone"))
        return out
    letters = set(re.findall(r"(?<![a-zA-Z\\])([a-df-hj-z])(?![a-zA-Z])", re.sub(r"\\[a-zA-Z]+", " ", g)))
    if len(letters) == 1 and not re.search(r"[=<>]|\\(?:in|le|ge|leq|geq|geqslant|leqslant|ne)(?![a-z])", g) \
            and not items(g) and "\\text" not in g:
        (v,) = letters
        new = next(c for c in "tuwz" if c != v)
        out.append((REJECT, _box(_rename(g, v, new)), "free variable renamed"))
    return out


_TRIG = re.compile(r"\\(sin|cos|tan|cot|sec|csc|log|ln)(?![a-zA-Z])")
_OTHER_FN = {"sin": "cos", "cos": "sin", "tan": "cot", "cot": "tan", "sec": "csc", "csc": "sec", "log": "sin", "ln": "cos"}


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def c_notation(g: str, rng: random.Random) -> list[Case]:
    out = []
    if _TRIG.search(g):
        wrap = rng.choice(["\\text{{{f}}}", "\\operatorname{{{f}}}", "\\mathrm{{{f}}}"])
        acc = _TRIG.sub(lambda m: wrap.format(f=m.group(1)) + " ", g)
        out.append((ACCEPT, _box(acc), "function name as text"))
        m = _TRIG.search(g)
        rej = g[:m.start()] + wrap.format(f=_OTHER_FN[m.group(1)]) + " " + g[m.end():]
        out.append((REJECT, _box(rej), "another function as text"))
        return out
    dm = re.fullmatch(r"(\d+(?:\.\d+)?)\s*\^\s*\{?\\circ\}?", g)
    if dm:
        d = Fraction(dm.group(1))
        if d.denominator > 1 and (d * 60).denominator == 1 and rng.random() < 0.7:
            deg, mins = int(d), int((d - int(d)) * 60)
            out.append((ACCEPT, _box(f"{deg}^\\circ {mins}'"), "degrees and minutes"))
            out.append((REJECT, _box(f"{deg}^\\circ {(mins + 10) % 60}'"), "other minutes"))
            return out
        mark = rng.choice(["^{\\circ}", "°", "\\degree", "\\textcirc", "^\\circ", "\\text{ degrees}"])
        out.append((ACCEPT, _box(dm.group(1) + mark), "degree mark"))
        out.append((REJECT, _box(fmt(d + 1) + mark), "degree mark, wrong"))
        return out
    if re.fullmatch(r"\d{1,3}", g) and 0 < int(g):
        n = int(g)
        form = rng.choice(["^{{\\text{{{s}}}}}", "^{{\\mathrm{{{s}}}}}", "^{{{s}}}", "\\text{{{s}}}", "{s}"])
        out.append((ACCEPT, _box(g + form.format(s=_ordinal(n))), "ordinal suffix"))
        out.append((REJECT, _box(str(n + 1) + form.format(s=_ordinal(n + 1))), "the next ordinal"))
        return out
    pm = re.fullmatch(r"(-?)\\[dt]?frac\{(\d*)\s*\\pi\}\{(\d+)\}", g)
    if pm:
        a = pm.group(2) or "1"
        out.append((ACCEPT, _box(f"{pm.group(1)}\\frac{{{a}}}{{{pm.group(3)}}}\\pi"), "\\frac{a}{b}\\pi"))
        if a != pm.group(3):
            out.append((REJECT, _box(f"{pm.group(1)}\\frac{{{pm.group(3)}}}{{{a}}}\\pi"), "\\frac{b}{a}\\pi"))
        return out
    if "\\frac" in g and "\\dfrac" not in g:
        out.append((ACCEPT, _box(g.replace("\\frac", rng.choice(["\\dfrac", "\\tfrac"]))), "\\dfrac"))
        w = perturb(g, rng)
        if w:
            out.append((REJECT, _box(w.replace("\\frac", "\\dfrac")), "\\dfrac, wrong"))
    return out


def c_order(g: str, rng: random.Random) -> list[Case]:
    its = items(g)
    if its and len(set(its)) > 1:
        perm = its[:]
        while perm == its:
            rng.shuffle(perm)
        return [(ACCEPT, _box(", ".join(perm)), "bare list reordered")]
    w = wrapped(g)
    if w and w[0] + w[2] == "()" and w[1] != w[1][::-1] and "\\infty" not in g:
        # a point / tuple reversed (an open interval (a, b) reversed is another answer too)
        return [(REJECT, _box("(" + ", ".join(reversed(w[1])) + ")"), "tuple reversed")]
    return []


def _round_sig(x: float, sig: int) -> str:
    return f"{x:.{sig}g}" if "e" not in f"{x:.{sig}g}" else ""


def c_rounding(g: str, rng: random.Random) -> list[Case]:
    v = value(g)
    if v is None or v.denominator == 1:
        return []
    d = v.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d == 1:
        return []  # terminating: must be written in full
    s = _round_sig(float(v), 4)
    if not s or "." not in s:
        return []
    ulp = Fraction(1, 10 ** len(s.split(".")[1]))
    off = Fraction(s) + ulp * rng.choice([1, -1])
    digits = len(s.split(".")[1])
    return [(ACCEPT, _box(s), "4 significant digits, correctly rounded"),
            (REJECT, _box(f"{float(off):.{digits}f}"), "last digit off by one")]


_JUNK = ["lorem ipsum", "random words here", "blue elephant sky", "apple banana", "hmm the cat"]


def c_words(g: str, rng: random.Random) -> list[Case]:
    if value(g) is None:
        return []
    return [(REJECT, f"{rng.choice(_JUNK)} {g}", "a number after random words"),
            (ACCEPT, f"{rng.choice(['Answer:', 'Final answer:', 'Total:', 'Result:'])} {g}", "a labelled value")]


def c_near_miss(g: str, rng: random.Random) -> list[Case]:
    out = [(ACCEPT, _box(g), "the gold itself")]
    its = items(g)
    if its and rng.random() < 0.5:
        if len(its) > 2 and len(set(its)) == len(its):
            k = rng.randrange(len(its))
            out.append((REJECT, _box(", ".join(its[:k] + its[k + 1:])), "an element dropped"))
        extra = perturb(its[0], rng)
        if extra and extra not in its:
            out.append((REJECT, _box(", ".join(its + [extra])), "an element added"))
        return out
    w = perturb(g, rng)
    if w:
        out.append((REJECT, _box(w), "digit or sign changed"))
    return out


def c_forms(g: str, rng: random.Random) -> list[Case]:
    """The same value in another form: ``27.0``, ``\\frac{54}{2}``, ``a/b``, a decimal for a terminating fraction,
    unicode (``−``, ``√``, ``π``), a set or "x = a or x = b" for a list."""
    v, its = value(g), items(g)
    forms = []
    if v is not None and v.denominator == 1 and abs(v) < 10 ** 6:
        n = v.numerator
        forms += [f"{n}.0", f"\\frac{{{2 * n}}}{{2}}"] + ([f"{n:,}"] if abs(n) >= 1000 else []) + (
            [f"\u2212{-n}"] if n < 0 else [])
    elif v is not None:
        forms += [f"{v.numerator}/{v.denominator}", f"\\frac{{{2 * v.numerator}}}{{{2 * v.denominator}}}"]
        d = v.denominator
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d == 1 and "." not in g:
            forms.append(str(float(v)))
        if "." in g:
            forms.append(fmt(v))
    elif its and 2 <= len(its) <= 4 and not any(re.search(r"[=<>]", x) for x in its):
        forms += [f"\\{{{', '.join(its)}\\}}"] + ([f"x = {its[0]} \\text{{ or }} x = {its[1]}"] if len(its) == 2 else [])
    elif re.search(r"\\sqrt\{\d+\}|\\pi", g) and "\\text" not in g:
        forms.append(re.sub(r"\\sqrt\{(\d+)\}", "\u221a\\1", g).replace("\\pi", "\u03c0"))
    if not forms:
        return []
    out = [(ACCEPT, _box(rng.choice(forms)), "another form of the value")]
    w = perturb(g, rng)
    if w and v is not None:
        wv = value(w)
        if wv is not None and wv.denominator == 1:
            out.append((REJECT, _box(f"{wv.numerator}.0"), "another form, wrong value"))
        elif wv is not None:
            out.append((REJECT, _box(f"{wv.numerator}/{wv.denominator}"), "another form, wrong value"))
    elif its and 2 <= len(its) <= 4 and len(set(its)) == len(its):
        out.append((REJECT, _box(f"\\{{{', '.join(its[:-1])}\\}}"), "a set missing an element"))
    return out


CLASSES: dict[str, Callable[[str, random.Random], list[Case]]] = {
    "spacing": c_spacing, "brackets": c_brackets, "display": c_display, "labelled": c_labelled, "pm": c_pm,
    "qualifier": c_qualifier, "rename": c_rename, "notation": c_notation, "order": c_order,
    "rounding": c_rounding, "words": c_words, "forms": c_forms, "near_miss": c_near_miss,
}
