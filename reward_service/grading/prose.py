r"""Reading answers out of prose: math spans, sentences, bare completions and refusals (choice letters:
:mod:`.choice`).

Rules:

* :func:`stated_values`: a labelled list states its values: "Maximum = 2, Minimum = 1", "Alice: 18, Bob: 14"
  are the list ``label = value, ...`` (so they answer the list gold, never the gold of their last value
  alone); one clause "Result: \\frac{97}{36}" is its value (LaTeX written outside ``$`` included); in a
  sentence ("the roots are -3 and 5, and their sum is 2", "x = 3, so y = 6") the last clause is the result.
* :func:`answer_from_prose`: the stated values, else the math span or number right after the last copula ("is",
  "=", "are"...), else the last one (the first one right after an answer phrase). A value right after a
  negation ("not 5", "isn't 10", "\ne 3") is never the answer; values joined by "or" / "and" / commas / "maybe" form one list answer, so
  "either 5 or 6" and "5 (or maybe 6)" match neither 5 nor 6.
* :func:`non_answer`: refusals ("I don't know", "not sure", "no idea", "I cannot solve it"...) and placeholders
  (``?``, ``...``, "answer", "N/A", ``___``) are not answers: the verdict is ``no_answer`` wherever they stand
  (bare, boxed, in an answer tag), so refusing never scores better than a wrong attempt.
* :func:`bare_answer`: a completion with no answer marker is an answer only when it looks like one:

  - math with no English words, on one line and not ending on an operator (a cut-off output); several lines
    only when every line is an assignment (``x = 3`` / ``y = 4``, read as a list);
  - a few words of text (at most 4, none of them a filler such as "I", "wait", "answer", "think"):
    ``Evelyn``, ``odd``, ``no solution``;
  - one short complete statement (at most 100 characters of prose, one sentence, no step words such as
    "first", "then", "next", "let", not ending on a conjunction, comma or operator) that *states its value*:
    only units or "is the answer" may follow it, and what comes before it states it: a copula ("The total is
    42 apples."), a label and a colon ("Total: 9"), or a statement word (an answer label, a conclusion word, a
    verb of finding, an approximator: "Answer 9", "Thus 9", "We find that $x < 3$", "we have $f(3) = -1$").
    "We first compute 3+4=7 and then we get stuck." is not an answer; neither are content words and a number
    ("lorem ipsum 9", "blue elephant sky 9": a reward hacker's dream, ``no_answer``).
* :func:`conclusion`: a last complete sentence starting with "Therefore/Thus/So/Hence..." that states a value
  with a copula, with no step words ("then", "next", "so far"...) after the value.
"""
from __future__ import annotations

import re
from typing import Optional

from .normalize import _UNIT_ALT, drop_spacing, strip_text_commands


_NUMBER_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9.\\])(?:[-+]\s?)?[$€£¥]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:[.,]\d+)?(?:\s*/\s*\d+)?(?:\s*(?:%|\\%|percent\b))?(?![\d])"
)
_COPULA = re.compile(r"(?<![A-Za-z])(?:is|are|was|were|be|equals?|gives?|by|=|\\approx|≈)(?![A-Za-z])", re.I)
_NEGATION = re.compile(r"(?:\bnot|n['’]t|\\neq?|\\not\s*=|≠)\s*(?:equal\s+to\s+|be\s+)?[$(\\\[]*\s*$", re.I)
_UNIT_WORDS_OK = re.compile(
    r"^(?:and|or|of|the|units?|square|cubic|sq|cm|mm|km|m|in|ft|feet|inch(?:es)?|miles?|meters?|hours?|minutes?|seconds?|"
    r"days?|weeks?|years?|dollars?|cents?|degrees?|pi|sqrt|frac|text|mbox|infty|cup|cap|le|ge|ne|pm|cdot|"
    r"sin|cos|tan|cot|sec|csc|log|ln|exp|lim|max|min|gcd|lcm|mod|det|arcsin|arccos|arctan|sinh|cosh|tanh)$",
    re.I,
)
_UNIT_AFTER = re.compile(r"\s*(\\text\{[^{}]*\}|(?:" + _UNIT_ALT + r")(?:\^?\d|²|³)?)(?![A-Za-z])")

# a statement that stops on a conjunction, preposition, operator or comma was cut off mid-sentence
TRUNCATED = re.compile(r"(?:\b(?:and|or|so|then|to|of|the|a|is|are|we|by|with|which|that|but|get|gives?|plus|minus|"
                       r"times)|[,=+\-*/(^]|\\(?:cdot|times|frac|sqrt))\s*$", re.I)
_MATH_CUT = re.compile(r"(?:[=+\-*/^(,_]|\\(?:cdot|times|frac|sqrt|left))\s*$")
# words that mark a step of the reasoning, not its conclusion
_STEP = re.compile(r"\b(?:first(?:ly)?|next|then|now|let(?:'s|s)?|need|needs|step|suppose|assume|consider|try(?:ing)?|"
                   r"start|begin|comput(?:e|ing)|calculat(?:e|ing)|solv(?:e|ing)|check(?:ing)?|verify(?:ing)?|stuck|"
                   r"continue|wait|hmm+|so\s+far|yet|still|remains?|however|but|unfinished|later)\b", re.I)
_FILLER = {"i", "i'm", "im", "i've", "i'll", "me", "my", "we", "we're", "we'll", "us", "let", "let's", "lets", "wait",
           "hmm", "hmmm", "um", "uh", "ok", "okay", "well", "so", "answer", "answers", "final", "think", "thinking",
           "maybe", "perhaps", "guess", "sure", "idea", "know", "unsure", "sorry", "cannot", "can't", "done",
           "continue", "step", "first", "next", "then", "now", "compute", "calculate", "solve", "stuck", "try",
           "question", "problem", "ignore", "instructions", "correct", "right", "true", "grade", "mark", "it",
           "this", "that", "is", "the", "a", "an", "of", "to", "here", "thanks", "hello", "hi"}
_TEXT_ANSWER_OK = {"yes", "no", "true", "false", "correct", "incorrect", "none", "all", "odd", "even", "neither", "both"}
_TAIL_OK = {"is", "are", "was", "the", "our", "my", "final", "answer", "solution", "solutions", "result", "value",
            "total", "in", "all", "only", "exactly", "here", "each", "per", "approximately", "about", "percent",
            "pct", "percentage", "points"}

_REFUSAL = re.compile(
    r"(?i)\b(?:i\s*(?:do\s*not|don['’]?t|dont)\s+(?:really\s+)?know|not\s+(?:sure|certain)|no\s+(?:idea|clue)|unsure|"
    r"i\s*(?:can\s*not|cannot|can['’]?t|could\s*not|couldn['’]?t|am\s+unable|['’]m\s+unable|am\s+not\s+able)\b|"
    r"unable\s+to\s+(?:solve|determine|answer|find|compute|complete|finish)|i\s+give\s+up|don['’]?t\s+know)\b"
)
_PLACEHOLDER = re.compile(
    r"(?i)^(?:[?._\s]|\\[lcv]?dots|\\ldots|…|\\_|\\quad|\\qquad|\\square|\\blacksquare|\\box)*$|"
    r"^(?:(?:the|your|my|final)\s+)*answer(?:\s+here)?$|^(?:n/?a|tbd|blank|none given|no answer)$"
)


def non_answer(text: str) -> Optional[str]:
    """A reason when ``text`` (an extracted answer) is a refusal or a placeholder, else None."""
    if len(text) > 2000:
        return None
    t = strip_text_commands(text).replace("$", " ").strip().strip(".!").strip()
    if _PLACEHOLDER.search(t):
        return "placeholder answer"
    if len(t) <= 300 and _REFUSAL.search(t):
        return "refusal"
    return None


# ------------------------------------------------------------------------------------------------ math spans
_SPAN_OPEN = re.compile(r"\$\$|(?<!\\)\$|\\\(|\\\[")
_SPAN_CLOSE = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}


def math_span_at(s: str) -> Optional[str]:
    """If s starts with a math span ($..$, $$..$$, \\(..\\), \\[..\\]) return its content."""
    s = s.lstrip()
    for op, cl in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(op):
            j = s.find(cl, len(op))
            while j > 0 and cl == "$" and s[j - 1] == "\\":
                j = s.find(cl, j + 1)
            if j > len(op):
                return s[len(op): j]
            return None
    return None


def joined_spans(rest: str) -> Optional[str]:
    """``$3$ or $-3$`` / ``$6764$,$10945$``: math spans at the start of ``rest`` joined by ``,`` / and / or are
    one answer (a list); None when ``rest`` does not start with a math span."""
    span = math_span_at(rest)
    if span is None or not span.strip():
        return None
    spans = [span]
    pos = rest.find(span) + len(span) + 1
    while len(spans) < 10:
        m = re.match(r"\$?\s*(?:,\s*(?:and|or)?|and|or|\\text\{\s*(?:and|or)\s*\})\s*(?=\$|\\\()", rest[pos:])
        if not m:
            break
        nxt = math_span_at(rest[pos + m.end():])
        if not nxt:
            break
        spans.append(nxt)
        pos = pos + m.end() + rest[pos + m.end():].find(nxt) + len(nxt) + 1
    return ", ".join(spans) if len(spans) > 1 else span


def find_spans(t: str) -> list[tuple[int, int, str]]:
    """Math spans ($..$, $$..$$, \\(..\\), \\[..\\]) as (start, end, content), found in linear time."""
    out = []
    pos = 0
    dead = set()  # delimiters with no closing one left
    while True:
        m = _SPAN_OPEN.search(t, pos)
        if not m:
            return out
        op = m.group()
        if op in dead:
            pos = m.end()
            continue
        cl = _SPAN_CLOSE[op]
        j = t.find(cl, m.end())
        while j > 0 and cl == "$" and t[j - 1] == "\\":
            j = t.find(cl, j + 1)
        if j < 0:
            dead.add(op)
            pos = m.end()
            continue
        if j > m.end():
            out.append((m.start(), j + len(cl), t[m.end(): j]))
        pos = j + len(cl)


def strip_spans(t: str, repl: str = " ") -> str:
    parts, last = [], 0
    for a, b, _ in find_spans(t):
        parts.append(t[last:a])
        parts.append(repl)
        last = b
    parts.append(t[last:])
    return "".join(parts)


# ------------------------------------------------------------------------------------------------ sentences
def _candidates(t: str) -> list[tuple[int, int, str]]:
    """Values in a sentence: math spans that look like math, and numbers outside spans; negated ones dropped."""
    cands, spans = [], []
    for a, b, content in find_spans(t):
        if _has_words(content):
            continue  # "$? just about 1$": not math (a number in it still counts)
        spans.append((a, b))
        if re.search(r"[0-9\\^_=<>]|^\s*[A-Za-z]\s*$|[A-Za-z]\s*[-+*/]", content):
            cands.append((a, b, content.strip()))

    def in_span(i):
        return any(a <= i < b for a, b in spans)

    for m in _NUMBER_IN_TEXT.finditer(t):
        if not in_span(m.start()):
            cands.append((m.start(), m.end(), m.group().strip()))
    cands = [c for c in cands if not _NEGATION.search(t[max(0, c[0] - 30): c[0]])]
    cands.sort()
    return cands


_JOINER = re.compile(r"^[\s$]*(?:(?:,|;|/|\bor\b|\band\b|\beither\b|\bmaybe\b|\bperhaps\b|\bpossibly\b|\bprobably\b|"
                     r"[()]|\\text\{\s*(?:or|and)\s*\})[\s$]*)+$", re.I)


def _pick(t: str, cands, first: bool = False) -> Optional[tuple[int, int, str]]:
    """The value of a sentence: the first candidate after the last copula, else the first (``first``: the
    sentence follows an answer phrase; a value that opens it is the answer) or the last one. Candidates that follow it joined only by "or" / "and" /
    commas / "maybe" ("5 or 6", "5 (or maybe 6)") are part of it: the answer is then their list."""
    if not cands:
        return None
    spans = find_spans(t)
    cops = [m for m in _COPULA.finditer(t) if not any(a <= m.start() < b for a, b, _ in spans)]
    k = len(cands) - 1 if not first else 0
    if first and not t[:cands[0][0]].strip(" $"):
        pass  # right after an answer phrase: "The answer is 5, and the remainder is 2" states 5
    elif cops:
        after = [i for i, c in enumerate(cands) if c[0] >= cops[-1].end()]
        if after:
            k = after[0]
    j = k
    while j + 1 < len(cands) and cands[j + 1][0] >= cands[j][1] and _JOINER.match(t[cands[j][1]: cands[j + 1][0]]):
        j += 1
    if j == k:
        return cands[k]
    return cands[k][0], cands[j][1], ", ".join(c[2] for c in cands[k: j + 1])


def answer_from_prose(t: str, first: bool = False) -> Optional[str]:
    """Reduce a sentence to its answer: its stated values (:func:`stated_values`), else the math span or number
    right after the last copula ("is", "=", "are"...), else the last (``first``: the first) math span or number;
    negated values never count; values joined by "or" / "and" form a list. None when there is none."""
    t = t.strip()
    sv = stated_values(t)
    if sv is not None:
        return sv
    c = _pick(t, _candidates(t), first) if t else None
    return _with_unit(t, c) if c else None


# one clause "<label> <is | = | :> <value>": the label is a few words or a math name, the value is math
_LABEL = (r"(?:(?:and|so|thus|hence|therefore|finally|then)\b[\s,]*)?(?:(?:the|our|its|their|a|an)\s+)?"
          r"(?P<label>[A-Za-z][A-Za-z'’-]*(?:\s+[A-Za-z][A-Za-z'’-]*){0,3}|\$\s*[A-Za-z](?:_\{?\w+\}?)?\s*\$|"
          r"\\text\{[^{}$]{1,40}\})\s*(?P<sep>:=|=|:|(?<![A-Za-z])(?:is|are|was|were|equals?|equal\s+to)(?![A-Za-z]))")
_CLAUSE = re.compile(r"^" + _LABEL + r"\s*(?P<value>\S.*?)\s*$", re.S | re.I)
_NEXT_CLAUSE = re.compile(r"(?:[,;]\s*(?:and\s+)?|\s+and\s+)(?=" + _LABEL + r")", re.I)
_CONSEQUENCE = re.compile(r"(?i)(?:so|thus|hence|therefore|then|finally)\b")
_ANSWER_LABEL = re.compile(r"(?:final\s+)?(?:answer|result)s?")
# a clause whose label starts with one of these words is a step or a condition ("If x = 2", "Since a = 1"),
# and a negated label states nothing
_NOT_LABEL = re.compile(r"(?i)^(?:if|since|because|when|where|let|suppose|assume|we|i|you|it|this|that|there|which|"
                        r"then|than|after|before|for|of|to|in|on|at|by|with|from|or)\b|\b(?:not|no|never)\b")


def stated_values(t: str) -> Optional[str]:
    """The values a statement states with labels: "Maximum = 2, Minimum = 1", "Alice: 18, Bob: 14, Carol: 7",
    "Result: \\frac{97}{36}", "The total is 42". The statement is split into clauses before every comma /
    semicolon / "and" (outside math spans and brackets) that a new "<label> <is | = | :>" follows; every clause
    must be "<label> <is | = | :> <value>" with a label of at most four words (or a math name) and a value that
    is math (no English words, not cut off). One clause gives its value. Several clauses written as a labelled
    list (every separator ``=`` or ``:``) give the list ``label = value, ...`` (labels distinct), so that the
    statement answers a list gold and never the gold of one of its values alone; in sentences ("the roots are
    -3 and 5, and their sum is 2") the last clause is the result and the earlier ones its premises. A clause after "so" / "thus" / "hence" / "therefore" states a consequence:
    the clauses before it are premises ("x = 3, so y = 6" is 6); a clause labelled "answer" / "result" is the
    answer ("n = 5 and the answer is 10" is 10). None when the text is not such a statement."""
    t = t.strip().rstrip(".!").strip()
    if not t or len(t) > 400 or "\n" in t:
        return None
    t = re.sub(r"^(?:so|thus|hence|therefore|finally|in\s+conclusion)\b[\s,:]*", "", t, flags=re.I)
    masked = t
    for a, b, _ in find_spans(t):  # no clause starts inside a math span
        masked = masked[:a] + re.sub(r"[,;]|\band\b", lambda m: "#" * len(m.group()), masked[a:b]) + masked[b:]
    clauses, start = [], 0
    for m in _NEXT_CLAUSE.finditer(masked):
        seg = masked[start: m.start()]
        if sum(seg.count(c) for c in "([{") == sum(seg.count(c) for c in ")]}"):
            clauses.append(t[start: m.start()])
            start = m.end()
    clauses.append(t[start:])
    out, seps = [], []
    for c in clauses:
        m = _CLAUSE.match(c.strip())
        if not m:
            return None
        if _CONSEQUENCE.match(c.strip()):
            out, seps = [], []  # "x = 3, so y = 6": what comes before "so" is a premise, not part of the answer
        label, value = m.group("label").strip(), m.group("value").strip()
        seps.append(m.group("sep"))
        words = label.replace("$", " ")
        if _NOT_LABEL.search(re.sub(r"\\text\{([^{}]*)\}", r"\1", words).strip()) or has_prose(value) or math_cut(value) \
                or value.count("$") % 2:
            return None
        if not re.search(r"[\d\\^_]|^[A-Za-z]$|[A-Za-z]\s*[-+*/]", value) and not (value.isalpha() and len(clauses) == 1):
            return None  # a word is a value only in a one-clause statement ("The function is odd")
        out.append((label, value))
    names = [re.sub(r"\\text\{([^{}]*)\}|\$", r"\1", lab).strip().lower() for lab, _ in out]
    answers = [val for name, (_, val) in zip(names, out) if _ANSWER_LABEL.fullmatch(name)]
    if len(answers) == 1:
        return answers[0]  # "n = 5 and the answer is 10": the clause labelled as the answer
    if len(out) == 1 or any(not re.fullmatch(r"\s*(?::=|=|:)\s*", sep) for sep in seps[-len(out):]):
        return out[-1][1]  # "the roots are -3 and 5, and the sum is 2": a premise, then the result
    if len(set(names)) != len(names):
        return None
    return ", ".join(f"{_label_tex(lab)} = {val}" for lab, val in out)


def _label_tex(label: str) -> str:
    """A clause label as the left side of an assignment: a math name as it is, words as ``\\text{…}``."""
    s = label.strip().strip("$").strip()
    if s.startswith("\\text{") or re.fullmatch(r"[A-Za-z](?:_\{?\w+\}?)?", s):
        return s
    return "\\text{" + s + "}"


def _with_unit(t: str, cand) -> str:
    """A number followed directly by a unit (``1,000.99m²``, ``5 cm``) keeps it, so units can be compared."""
    s, e, txt = cand
    if not re.match(r"^[-+]?[$€£¥]?[\d,.\s/]+%?$", txt):
        return txt
    m = _UNIT_AFTER.match(t[e:])
    if m:
        return txt + " " + m.group(1).strip()
    return txt


def _has_words(t: str) -> bool:
    s = re.sub(r"\\[a-zA-Z]+\s*\{[^{}]*\}|\\[a-zA-Z]+", " ", t)
    return any(not _UNIT_WORDS_OK.match(w) for w in re.findall(r"[A-Za-z]{3,}", s))


_FUNCTION_WORD = re.compile(r"(?<![A-Za-z\\{^_])(?:is|it|so|be|we|to|of|an|as|at|by|if|on|my|me|do|am|us)(?![A-Za-z}])", re.I)


def has_prose(t: str) -> bool:
    """True when the text contains English words outside math / \\text{} (so it is a sentence, not an answer)."""
    s = strip_spans(t)
    s = re.sub(r"\\[a-zA-Z]+\s*\{[^{}]*\}|\\[a-zA-Z]+", " ", s)
    words = [w for w in re.findall(r"\b[A-Za-z]{3,}\b", s) if not _UNIT_WORDS_OK.match(w)]
    if _FUNCTION_WORD.search(s):
        words.append("")  # "It is 5": two-letter English words are never math or units
    if not words:
        return False
    if len(words) >= 2:
        return True
    return bool(re.search(r"\d|\$", t))


def _words(t: str) -> list[str]:
    """Lower-case words of a text, \\text{} contents included, LaTeX commands and math spans' commands out."""
    s = strip_text_commands(t)
    s = re.sub(r"\\[a-zA-Z]+", " ", s)
    return [w.lower() for w in re.findall(r"[A-Za-z]+(?:['’][a-z]+)?", s)]


def _tail_ok(tail: str) -> bool:
    """Only units, punctuation or "is the answer" after the value of a short statement."""
    words = [w for w in _words(strip_spans(tail)) if len(w) > 1]
    return all(w in _TAIL_OK or _UNIT_WORDS_OK.match(w) or re.fullmatch(_UNIT_ALT, w) for w in words)


# words that make the text before a bare statement's value a statement of it (besides a copula or a colon):
# answer labels, conclusion words, verbs of finding, approximators ("Answer 9", "Thus 9", "we have $x = 9$",
# "just about 1"); content words alone ("lorem ipsum 9", "blue elephant sky 9") state nothing
_LEAD_MARKERS = {"answer", "answers", "final", "result", "results", "total", "solution", "solutions", "thus", "so",
                 "therefore", "hence", "finally", "find", "finds", "found", "get", "gets", "got", "obtain", "obtains",
                 "obtained", "have", "has", "conclude", "gives", "give", "yields", "yield", "makes", "equal", "equals",
                 "approximately", "about", "roughly", "around", "nearly", "almost", "exactly", "just", "only", "determine",
                 "determines", "see", "sees", "know", "show", "shows", "deduce", "deduces"}


def _step_word(t: str) -> bool:
    """A word marking a step of the reasoning, outside math spans and LaTeX commands (``\\begin`` is no "begin")."""
    return bool(_STEP.search(re.sub(r"\\[a-zA-Z]+", " ", strip_spans(t))))


def _lead_ok(lead: str) -> bool:
    """The words before a bare statement's plain number state it as the answer: a copula ("The total is 9"), a
    colon ("Total: 9") or a statement word ("Answer 9", "Thus 9"). Random words ("lorem ipsum 9") do not. (A value
    typeset as math, ``$…$``, is stated by the typesetting: "He can choose them in $\\binom{7}{3} = 35$ ways.")"""
    bare = strip_spans(lead)
    if _COPULA.search(bare) or re.search(r"(?i)\b(?:it|that|this|answer|result|total)['’]s\b", bare) \
            or bare.rstrip(" $").endswith(":"):
        return True  # "The total is 9", "it's 9", "Total: 9", "Soucis : 2,74 $"
    words = re.findall(r"[a-z]+", " ".join(_words(bare)))
    return not words or any(w in _LEAD_MARKERS for w in words)


def _one_line_math(s: str) -> Optional[str]:
    """A pure-math bare answer: one line, or lines that are all assignments (joined as a list)."""
    body = re.sub(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", "ENV", s, flags=re.S) if "\\begin{" in s else s
    lines = [ln.strip() for ln in body.split("\n") if ln.strip() and ln.strip() not in ("$$", "\\[", "\\]", "$")]
    if len(lines) > 1:
        if all(re.fullmatch(r"\$*\s*\\?[A-Za-z]\w*(?:_\{?\w+\}?)?\s*=\s*[^=]+", ln) for ln in lines) and len(lines) <= 10:
            return ", ".join(ln.strip("$ ") for ln in lines)
        return None
    if math_cut(s):
        return None  # "3 + 4 =" : cut off
    return s


def math_cut(s: str) -> bool:
    """Math that ends on an operator, an opening bracket or ``\\frac`` (spacing ignored): a cut-off output."""
    return bool(_MATH_CUT.search(drop_spacing(s.replace("$", " ")).rstrip()))


def bare_answer(stripped: str) -> Optional[tuple[str, str]]:
    """(answer, reason) when a completion without any answer marker is itself an answer (module docstring)."""
    if not stripped or len(stripped) > 2000 or non_answer(stripped):
        return None
    if not has_prose(stripped):
        if re.search(r"[A-Za-z]{2,}", stripped) and not re.search(r"[\d$\\=+\-*/^_(){}\[\]<>|]", stripped):
            # words only: a short text answer ("Evelyn", "no solution"), never a filler ("Wait", "The answer")
            words = _words(stripped)
            if len(words) > 4 or "\n" in stripped or any(w in _FILLER and w not in _TEXT_ANSWER_OK for w in words):
                return None
            return stripped.rstrip(".!"), "bare text answer"
        one = _one_line_math(stripped)
        return (one, "bare answer") if one is not None else None
    if _step_word(stripped):
        return None  # a step of the reasoning, not its conclusion
    prose_len = len(strip_spans(stripped, "$"))
    one_sentence = (prose_len <= 100 and "\n" not in stripped and not re.search(r"[.!]\s+[A-Za-z]", stripped)
                    and not TRUNCATED.search(stripped))
    if not one_sentence:
        return None
    t = stripped.strip()
    sv = stated_values(t)
    if sv is not None:
        return sv, "short statement"
    cand = _pick(t, _candidates(t))
    if cand is not None:
        if not _tail_ok(t[cand[1]:]):
            return None  # "3+4=7 and then we get stuck": the value does not close the statement
        if cand[2] == t[cand[0]: cand[1]].strip() and "$" not in t[:cand[1]] and not _lead_ok(t[:cand[0]]):
            return None  # "lorem ipsum 9": words and a number, nothing states it as the answer
        return _with_unit(t, cand), "short statement"
    # a text statement: "The function is odd."
    m = list(_COPULA.finditer(t))
    if m:
        tail = t[m[-1].end():].strip().rstrip(".!").strip()
        if tail and len(tail.split()) <= 3 and not re.search(r"\d", tail):
            return tail, "short statement"
    return None


def conclusion(tail: str) -> Optional[str]:
    """The value stated by a complete final sentence that starts with a conclusion word (module docstring)."""
    t = re.sub(r"I hope it is correct\.?$", "", tail.rstrip(), flags=re.I).rstrip()
    if not t.endswith((".", "!")) and not t.endswith(".$") and not t.endswith("$."):
        return None
    body = t.rstrip(".! ")
    # previous sentence boundary: ". " / "! " / newline, not inside a number
    cut = max(body.rfind(". "), body.rfind("! "), body.rfind("\n"), body.rfind(".\n"))
    sent = body[cut + 1:].strip() if cut >= 0 else body.strip()
    sent = re.sub(r"^[\s*#>-]+", "", sent)
    if not _CONCLUDE.match(sent):
        # "... = 6$ So, the pair is $(7, 6)$." : a conclusion word after a math span ends the previous sentence
        starts = [m.start() for m in _CONCLUDE_INNER.finditer(sent)]
        if not starts:
            return None
        sent = sent[starts[-1]:].lstrip("$ ")
    if len(sent) > 400 or not _CONCLUDE.match(sent) or not _COPULA.search(sent):
        return None
    if re.search(r"\bso\s+far\b|\blet(?:'s)?\b", sent, re.I):
        return None
    body = _CONCLUDE.sub("", sent, count=1).lstrip(" ,:")
    if body and not has_prose(body) and re.search(r"\d", body) and not _MATH_CUT.search(body):
        return body  # "Therefore x = 5 and y = 6": the statement is all math
    sv = stated_values(body)
    if sv is not None:
        return sv
    cand = _pick(sent, _candidates(sent))
    if cand is None or _step_word(sent[cand[1]:]):
        return None
    return _with_unit(sent, cand)


_CONCLUDE = re.compile(r"^(?:therefore|thus|so|hence|finally|in\s+conclusion|in\s+summary|consequently|as\s+a\s+result|"
                       r"overall|the\s+answer)\b", re.I)
_CONCLUDE_INNER = re.compile(r"\$\s+(?=(?:Therefore|Thus|So|Hence|Finally|Consequently)\b)")
