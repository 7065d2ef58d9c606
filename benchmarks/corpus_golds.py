"""Golds of ../shared/data for the generated grader corpus (``benchmarks/grader_corpus.py``), and the small
readers the rewritings use: top-level list items, tuples, plain numbers, near-miss perturbations. Written from
the gold's text alone, independently of the grader's own parser."""
from __future__ import annotations

import random
import re
from fractions import Fraction
from typing import Optional

from benchmarks.bench_reward_service import _jsonl


def load_golds() -> list[dict]:
    """Unique golds: {src, gold (as the data set gives it), g (the bare math string)}."""
    raw = []
    for r in _jsonl("math_train"):
        raw.append(("math_train", r["answer"], r["answer"]))
    for r in _jsonl("math500"):
        raw.append(("math_test", r["answer"], r["answer"]))
    for r in _jsonl("math_l3to5_simplerl_approx"):
        if r["unique_id"].startswith("test/"):
            raw.append(("math_test", r["answer"], r["answer"]))
    for r in _jsonl("olympiadbench"):
        raw.append(("olympiadbench", r["final_answer"], r["final_answer"][0]))
    for r in _jsonl("minerva_math_rllm"):
        raw.append(("minerva", [a.strip() for a in r["answer"]], r["answer"][0]))
    out, seen = [], set()
    for src, gold, g in raw:
        g = bare(g)
        if not g or g in seen or len(g) > 200:
            continue
        seen.add(g)
        out.append({"src": src, "gold": gold, "g": g})
    return out


def bare(g: str) -> str:
    """The gold's math: ``$…$`` removed, a trailing period dropped; OlympiadBench's ``$a$,$b$`` joined."""
    g = g.strip()
    g = re.sub(r"\$\s*,\s*\$", ", ", g)
    g = g.strip("$ ").rstrip(".,;").strip()
    return g if "$" not in g else ""


def split_top(s: str) -> list[str]:
    """Top-level comma split (brackets, braces and ``\\{ \\}`` respected)."""
    out, depth, cur, i = [], 0, "", 0
    while i < len(s):
        if s.startswith("\\{", i) or s.startswith("\\}", i):
            depth += 1 if s[i + 1] == "{" else -1
            cur += s[i:i + 2]
            i += 2
            continue
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0 and not cur.endswith("\\"):
            out.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur.strip())
    return out


def items(g: str) -> Optional[list[str]]:
    """The items of a bare list gold (``1, 2, 3``; not a tuple, interval or set), else None."""
    if re.fullmatch(r"-?\d{1,3}(?:,\s*(?:\\!)?\s*\d{3})+(?:\.\d+)?", g) or g.startswith(("(", "[", "\\{", "\\left")):
        return None  # a number with thousands separators, or a bracketed gold
    parts = split_top(g)
    if len(parts) < 2 or not all(parts) or any("=" in p or "\\text" in p for p in parts):
        return None
    return parts


def wrapped(g: str) -> Optional[tuple[str, list[str], str]]:
    """(open, items, close) of a tuple / interval gold ``(a, b)``, ``[a, b)``."""
    m = re.fullmatch(r"(\\left)?([(\[])(.*?)(\\right)?([)\]])", g)
    if not m:
        return None
    depth = 0
    for ch in m.group(3):
        depth += (ch in "([{") - (ch in ")]}")
        if depth < 0:
            return None  # "(a, b), (c, d)": two groups, not one
    parts = split_top(m.group(3))
    if len(parts) < 2 or depth or not all(parts):
        return None
    return m.group(2), parts, m.group(5)


_NUM = re.compile(r"(-?)(?:(\d+)(?:\.(\d+))?|\\[dt]?frac\{(\d+)\}\{(\d+)\})")


def value(g: str) -> Optional[Fraction]:
    """Exact value of a plain number gold: integer, decimal or ``\\frac{a}{b}`` with an optional sign."""
    m = _NUM.fullmatch(g.replace(" ", ""))
    if not m:
        return None
    sign = -1 if m.group(1) else 1
    if m.group(4):
        return sign * Fraction(int(m.group(4)), int(m.group(5))) if int(m.group(5)) else None
    return sign * Fraction(m.group(2) + (m.group(3) or "")) / 10 ** len(m.group(3) or "")


def fmt(q: Fraction) -> str:
    if q.denominator == 1:
        return str(q.numerator)
    return ("-" if q < 0 else "") + f"\\frac{{{abs(q.numerator)}}}{{{q.denominator}}}"


def perturb(g: str, rng: random.Random) -> Optional[str]:
    """A near miss: a different number, a digit changed, or the sign flipped (never equal to the gold)."""
    v = value(g)
    if v is not None:
        choices = [v + 1, v - 1, -v if v else Fraction(1), v * 2 if v else Fraction(2)]
        if v.denominator > 1:
            choices.append(1 / v)
        w = rng.choice([c for c in choices if c != v])
        return fmt(w) if "." not in g or w.denominator != 1 else str(w.numerator) + ".5"
    if "\\text" in g or "\\mathrm" in g:
        return None
    digits = [m for m in re.finditer(r"\d", g)]
    if digits and rng.random() < 0.7:
        m = rng.choice(digits)
        d = int(m.group())
        nd = (d + rng.choice([1, 2])) % 10
        if nd == 0 and (m.start() == 0 or not g[m.start() - 1].isdigit()) and m.end() < len(g) and g[m.end()].isdigit():
            nd = 1  # no new leading zero
        if g[max(0, m.start() - 1): m.start()] in "_" or g[m.end(): m.end() + 1] == "!":
            return "-\\left(" + g + "\\right)" if not items(g) else None  # a subscript or a factorial
        return g[:m.start()] + str(nd) + g[m.end():]
    if items(g) or wrapped(g) or re.fullmatch(r"(?:\\text\{)?\(?[A-J]\)?\}?", g) or "matrix" in g:
        return None  # a choice letter or a matrix (which may be zero) has no safe sign flip
    return "-\\left(" + g + "\\right)"
