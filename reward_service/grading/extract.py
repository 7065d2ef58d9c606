"""Find the final answer in a completion.

Order (the first rule that finds something wins; see :func:`extract`):

1. Reasoning is skipped: only the text after the last ``</think>`` is read. A ``<think>`` left open at the
   end (no ``</think>`` after it) means the output stopped mid-reasoning: the verdict is ``no_answer``.
2. ``answer_tag``: the last closed ``<answer>…</answer>``; a ``\\boxed{}`` inside it is unwrapped; an empty
   tag is ``no_answer``.
3. ``boxed``: the last ``\\boxed{…}`` / ``\\fbox{…}`` / ``\\boxed N``. If the last box is not closed (a truncated
   output) the verdict is ``no_answer``. Boxes just before it that are joined to it only by separators
   (``,``, ``;``, "and", "or", ``\\quad``, a ``y =`` label) belong to the same final span and together form one
   set answer, so ``\\boxed{1}\\boxed{2}\\boxed{3}`` is the answer ``{1, 2, 3}``, never ``3``. A strong
   "final answer is $X$" statement *after* the last box overrides it.
4. ``minerva`` ("Final Answer: The final answer is X. I hope it is correct.") and ``phrase``
   ("final answer is", "the answer is", "Answer:"): the last occurrence; the answer is the math span right
   after it, else the rest of the sentence (prose is reduced by :func:`answer_from_prose`).
5. ``gsm8k``: the last ``#### N`` line.
6. ``phrase`` (conclusion): a last, complete sentence starting with "Therefore/Thus/So/Hence…" that states
   a value ("Therefore, the probability is 2/3."). A truncated output (no final period) has none.
7. ``last_number``: only when asked (GSM8K-style schemes), after the bare-answer rule.
8. ``bare``: the completion itself is an answer: pure math (up to 2000 characters), or one short complete
   statement (at most 100 characters of prose, one sentence, not ending on "and" / "so" / a comma / an
   operator, which mark an output cut off mid-sentence); its value is read after the last "is" / "=".
   Any other answerless completion gives ``no_answer``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .normalize import _UNIT_ALT, fix_escapes


@dataclass
class Extraction:
    answer: Optional[str]
    method: Optional[str]
    reason: str
    parts: Optional[list] = None  # several boxed answers that form one set answer


MAX_SCAN = 200_000  # only the last MAX_SCAN characters of the visible text are searched for boxes
PHRASE_SCAN = 20_000  # and the last PHRASE_SCAN for phrases, "####", conclusions

_THINK_OPEN = re.compile(r"<think>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
_ANS_OPEN = re.compile(r"<answer>", re.I)
_ANS_CLOSE = re.compile(r"</answer>", re.I)
_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_CHAT_TAIL = re.compile(r"(?:<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|</s>|<\|end\|>|<\|assistant\|>|<\|user\|>).*$", re.S)
_HOPE = re.compile(r"I hope it is correct\.?$", re.I)

_MINERVA = re.compile(r"final\s+answer\s*:\s*the\s+final\s+answer\s+is\s*:?\s*(?P<a>.{0,600}?)\s*\.?\s*I\s+hope\s+it\s+is\s+correct", re.I | re.S)
_PHRASE = re.compile(
    r"(?:final\s+answer\s*(?:is|:|=|would\s+be|will\s+be|should\s+be)"
    r"|(?<![a-z])answer\s+(?:is|would\s+be|will\s+be|should\s+be|must\s+be)(?:\s*:)?"
    r"|(?<![a-z])answer\s*(?:\*\*)?\s*:"
    r"|(?<![a-z])answer\s*(?=\\\(|\\\[|\$))",
    re.I,
)
_GSM = re.compile(r"####\s*([^\n]*)")
_CONCLUDE = re.compile(r"^(?:therefore|thus|so|hence|finally|in\s+conclusion|in\s+summary|consequently|as\s+a\s+result|overall|the\s+answer)\b", re.I)
# a statement that stops on a conjunction, preposition, operator or comma was cut off mid-sentence
_TRUNCATED = re.compile(r"(?:\b(?:and|or|so|then|to|of|the|a|is|are|we|by|with|which|that|but|get|gives?|plus|minus|"
                        r"times)|[,=+\-*/(]|\\(?:cdot|times))\s*$", re.I)
_CONCLUDE_INNER = re.compile(r"\$\s+(?=(?:Therefore|Thus|So|Hence|Finally|Consequently)\b)")
_NUMBER_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9.\\])(?:[-+]\s?)?[$€£¥]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:[.,]\d+)?(?:\s*/\s*\d+)?(?:\s*(?:%|\\%|percent\b))?(?![\d])"
)
_COPULA = re.compile(r"(?<![A-Za-z])(?:is|are|was|were|be|equals?|gives?|by|=|\\approx|≈)(?![A-Za-z])", re.I)
_CHOICE = re.compile(r"(?<![A-Za-z\\])\(?([A-J])\)?(?![A-Za-z])")
_UNIT_WORDS_OK = re.compile(
    r"^(?:and|or|of|the|units?|square|cubic|sq|cm|mm|km|m|in|ft|feet|inch(?:es)?|miles?|meters?|hours?|minutes?|seconds?|"
    r"days?|weeks?|years?|dollars?|cents?|degrees?|pi|sqrt|frac|text|mbox|infty|cup|cap|le|ge|ne|pm|cdot)$",
    re.I,
)


_UNIT_AFTER = re.compile(r"\s*(\\text\{[^{}]*\}|(?:" + _UNIT_ALT + r")(?:\^?\d|²|³)?)(?![A-Za-z])")


def split_think(text: str) -> tuple[str, Optional[str]]:
    """The visible (non-reasoning) text; the second value is a no_answer reason or None.

    A ``<think>`` that is still open at the end (no ``</think>`` after it) means the output stopped in the
    middle of reasoning: whatever was written before it, the completion has no final answer."""
    closes = list(_THINK_CLOSE.finditer(text))
    last_close = closes[-1].end() if closes else 0
    opens = list(_THINK_OPEN.finditer(text, last_close))
    if opens:
        return "", "unterminated <think>"
    return text[last_close:], None


def _brace_pairs(text: str) -> dict[int, int]:
    """Position of the matching ``}`` for every ``{`` (escaped ``\\{`` / ``\\}`` skipped), in one pass."""
    pairs, stack = {}, []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def find_boxes(text: str) -> list[tuple[int, int, Optional[str]]]:
    """All ``\\boxed``/``\\fbox`` as (start, end, content); content None when the box is not closed."""
    out = []
    pairs = None
    n = len(text)
    for m in _BOX.finditer(text):
        i = m.end()
        while i < n and text[i] in " \t\n":
            i += 1
        if i < n and text[i] == "{":
            if pairs is None:
                pairs = _brace_pairs(text)
            close = pairs.get(i, -1)
            if close < 0:
                out.append((m.start(), n, None))
            else:
                out.append((m.start(), close + 1, text[i + 1: close].strip()))
        elif i > m.end() and i < n:
            mm = re.match(r"[^\s$]+", text[i:])
            tok = re.sub(r"[.,;]+$", "", mm.group()) if mm else ""
            out.append((m.start(), i + (mm.end() if mm else 0), tok or None))
        else:
            out.append((m.start(), min(n, i), None))
    return out


_CORRECTION = re.compile(r"(?i)\b(?:no|not|wait|actually|but|hmm+|instead|correction|sorry|oops|rather|mean|wrong|mistake|"
                         r"however|thus|so|therefore|hence|recheck|check|again|let)\b")


def _connector_ok(between: str) -> bool:
    """True when the text between two boxes only joins them (separators, labels, spacing)."""
    if len(between) < 10 and not re.search(r"[A-Za-z]", between.replace("\\quad", "")):
        return True
    t = re.sub(r"\\(?:text|textbf|mathrm|mbox|textnormal)\s*\{([^{}]*)\}", r" \1 ", between)
    t = re.sub(r"\$|\\[()\[\]]|\\q?quad|\\[,;:! ]|~|&|\\\\|\\hline|\\end\{[a-z*]+\}|\\begin\{[a-z*]+\}", " ", t)
    t = re.sub(r"\s+", " ", t).strip()
    # a trailing label such as "y_2 =" or "and (b) x ="
    t = re.sub(r"(?:\(?[a-z]\)|\b[A-Za-z](?:_\{?\w+\}?)?\s*=|\b[A-Za-z]+\s*:)\s*$", "", t).strip()
    t = re.sub(r"^(?:[.,;:]\s*)+", "", t).strip()
    if not t or re.fullmatch(r"[.,;:\s]*", t):
        return True
    if _CORRECTION.search(t):
        return False  # "\boxed{8}, no wait, \boxed{9}": the later box replaces the earlier one
    if len(t) <= 60 and re.search(r"(?:^|\s|,)(?:and|or|,|;)$|[,;]$", t):
        return True
    return False


def _box_group(boxes, text) -> tuple[list[str], int]:
    """Contents of the final span of boxes (see module docstring) and its end offset."""
    last = boxes[-1]
    contents = [last[2]]
    prev_start = last[0]
    for b in reversed(boxes[:-1]):
        if b[2] is None or b[1] > prev_start:
            break
        if not _connector_ok(text[b[1]:prev_start]):
            break
        contents.append(b[2])
        prev_start = b[0]
    contents.reverse()
    uniq = []
    for c in contents:
        if c not in uniq:
            uniq.append(c)
    return uniq, last[1]


def _math_span_at(s: str) -> Optional[str]:
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


_SPAN_OPEN = re.compile(r"\$\$|(?<!\\)\$|\\\(|\\\[")
_SPAN_CLOSE = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}


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


def _strip_spans(t: str, repl: str = " ") -> str:
    parts, last = [], 0
    for a, b, _ in find_spans(t):
        parts.append(t[last:a])
        parts.append(repl)
        last = b
    parts.append(t[last:])
    return "".join(parts)


def answer_from_prose(t: str) -> Optional[str]:
    """Reduce a sentence to its answer: the math span or number right after the last copula ("is", "=",
    "are"...), else the last math span or number. None when there is none."""
    t = t.strip()
    if not t:
        return None
    cands = []  # (start, end, text)
    spans = []
    for a, b, content in find_spans(t):
        if _has_words(content):
            continue  # "$? just about 1$": not math
        if re.search(r"[0-9\\^_=<>]|^\s*[A-Za-z]\s*$|[A-Za-z]\s*[-+*/]", content):
            cands.append((a, b, content.strip()))
        spans.append((a, b))

    def in_span(i):
        return any(a <= i < b for a, b in spans)

    for m in _NUMBER_IN_TEXT.finditer(t):
        if not in_span(m.start()):
            cands.append((m.start(), m.end(), m.group().strip()))
    if not cands:
        return None
    cands.sort()
    cops = [m for m in _COPULA.finditer(t) if not in_span(m.start())]
    if cops:
        after = [c for c in cands if c[0] >= cops[-1].end()]
        if after:
            return _with_unit(t, after[0])
    return _with_unit(t, cands[-1])


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


def _phrase_answer(text: str, m: re.Match) -> Optional[str]:
    """The answer stated right after a phrase match."""
    rest = text[m.end():]
    rest = re.sub(r"^[\s*:]+", "", rest)
    if not rest:
        return None
    if rest.startswith("\\boxed") or rest.startswith("\\fbox"):
        bx = find_boxes(rest)
        if bx and bx[0][2] is not None:
            return bx[0][2]
    span = _math_span_at(rest)
    if span is not None and span.strip():
        # "$x = 3$ or $x = -3$": several spans joined by and / or / commas are one answer
        spans = [span]
        pos = rest.find(span) + len(span) + 1
        while len(spans) < 10:
            m = re.match(r"\$?\s*(?:,\s*(?:and|or)?|and|or|\\text\{\s*(?:and|or)\s*\})\s*(?=\$|\\\()", rest[pos:])
            if not m:
                break
            nxt = _math_span_at(rest[pos + m.end():])
            if not nxt:
                break
            spans.append(nxt)
            pos = pos + m.end() + rest[pos + m.end():].find(nxt) + len(nxt) + 1
        return ", ".join(spans) if len(spans) > 1 else span
    # up to the end of the sentence / line
    mm = re.search(r"\n|(?<![0-9])\.(?=\s|$)|\.(?=\s+[A-Z])|$", rest)
    sent = rest[: mm.start()] if mm else rest
    sent = re.sub(r"(?<=\d)!+$", "", sent[:400].strip())  # "the answer is 5!" is excitement, not 120
    if not sent:
        return None
    # a plain value right away: keep it whole ("(0, 1)", "12,000,023", "x = 5")
    if not _has_prose(sent):
        return sent
    return answer_from_prose(sent)


def _has_prose(t: str) -> bool:
    """True when the text contains English words outside math / \\text{} (so it is a sentence, not an answer)."""
    s = _strip_spans(t)
    s = re.sub(r"\\[a-zA-Z]+\s*\{[^{}]*\}|\\[a-zA-Z]+", " ", s)
    words = [w for w in re.findall(r"\b[A-Za-z]{3,}\b", s) if not _UNIT_WORDS_OK.match(w)]
    if not words:
        return False
    if len(words) >= 2:
        return True
    return bool(re.search(r"\d|\$", t))


def extract_choice(text: str) -> Optional[str]:
    """A multiple-choice letter from a short text: ``(B)``, ``B:``, ``\\text{(B)}``, ``B.``, "the answer is B"."""
    t = re.sub(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}", r"\1", text)
    t = t.replace("$", " ").strip()
    if re.fullmatch(r"\(?[a-j]\)?", t):
        return t.strip("()").upper()  # a lone lower-case letter in a box
    m = re.match(r"^\**\s*\(?([A-J])\)?(?:[.:,)\s*]|$)", t)
    if m:
        return m.group(1)
    anchors = list(re.finditer(r"answer(?:\s+is|\s*:)?|option|choice", t, re.I))
    for a in reversed(anchors):
        mm = _CHOICE.search(t[a.end(): a.end() + 60])
        if mm:
            return mm.group(1)
    letters = _CHOICE.findall(t)
    if letters and len(t) <= 200:
        return letters[-1]
    return None


def extract(completion: str, *, last_number_fallback: bool = False, choice: bool = False,
            is_gold: bool = False) -> Extraction:
    """Find the final answer of a completion (see the module docstring for the order of the rules).

    ``choice``: the gold is a multiple-choice letter, so prose like "the answer is for sure D" is reduced to
    the letter. ``is_gold``: the text is a reference solution or answer (no length limit on a bare answer).
    """
    text = fix_escapes(completion) if ("\\\\" in completion or "\x0c" in completion or "\x08" in completion) else completion
    visible, why = split_think(text)
    if why:
        return Extraction(None, None, why)
    if len(visible) > MAX_SCAN:
        visible = visible[-MAX_SCAN:]
    if not visible.strip():
        return Extraction(None, None, "nothing after </think>" if text.strip() else "empty completion")

    # 2. <answer> ... </answer>
    opens = list(_ANS_OPEN.finditer(visible))
    if opens:
        o = opens[-1]
        c = _ANS_CLOSE.search(visible, o.end())
        if c:
            inner = visible[o.end(): c.start()].strip()
            if not inner:
                return Extraction(None, "answer_tag", "empty <answer>")
            sub = extract(inner, choice=choice, is_gold=True)
            if sub.answer is None:
                return Extraction(None, "answer_tag", sub.reason)
            return Extraction(sub.answer, "answer_tag", "answer tag", sub.parts)
        # unclosed tag: read what follows it with the other rules
        visible = visible[o.end():]

    # 3. boxes
    boxes = find_boxes(visible)
    box_end = -1
    boxed = None
    if boxes:
        if boxes[-1][2] is None:
            if is_gold:
                rest = visible[boxes[-1][0]:]
                rest = rest[rest.find("{") + 1:] if "{" in rest else ""
                if rest.strip():
                    return Extraction(rest.strip(), "boxed", "unclosed box in the gold")
            # truncated / unclosed last box; an answer stated after an earlier box does not rescue it
            return Extraction(None, "boxed", "unclosed \\boxed")
        parts, box_end = _box_group(boxes, visible)
        boxed = Extraction(", ".join(parts) if len(parts) > 1 else parts[0], "boxed",
                           "boxed" if len(parts) == 1 else f"{len(parts)} boxed answers form one set",
                           parts if len(parts) > 1 else None)

    tail = _CHAT_TAIL.sub("", visible[-PHRASE_SCAN:])
    box_end -= len(visible) - len(visible[-PHRASE_SCAN:])
    # 4. phrases (and Minerva's format); after a box only a strong statement with a math value overrides
    mv = None
    for m in _MINERVA.finditer(tail):
        mv = m
    pm = None
    for m in _PHRASE.finditer(tail):
        pm = m
    if boxed is not None:
        for m, method in ((mv, "minerva"), (pm, "phrase")):
            if m is not None and m.start() > box_end and re.match(r"(?i)final", m.group()):
                a = m.group("a") if method == "minerva" else _phrase_answer(tail, m)
                if a and _math_span_at(tail[m.start(m.lastindex or 0):] if method == "minerva" else re.sub(r"^[\s*:]+", "", tail[m.end():])) is not None:
                    return Extraction(_strip_span(a), method, "final answer statement after the box")
        return boxed
    if mv is not None and (pm is None or mv.end() >= pm.start()):
        a = mv.group("a").strip()
        a2 = _math_span_at(a)
        a = a2 if a2 is not None else (a if not _has_prose(a) else answer_from_prose(a))
        if a:
            return Extraction(_strip_span(a), "minerva", "minerva final answer")
    if pm is not None:
        a = _phrase_answer(tail, pm)
        if choice:
            ch = extract_choice(tail[pm.start():])
            if ch:
                return Extraction(ch, "phrase", "answer phrase")
        if a:
            return Extraction(_strip_span(a), "phrase", "answer phrase")
    # 5. GSM8K
    gm = None
    for m in _GSM.finditer(tail):
        gm = m
    if gm is not None and gm.group(1).strip():
        return Extraction(gm.group(1).strip(), "gsm8k", "#### line")
    # 6. conclusion sentence
    concl = _conclusion(tail)
    if concl:
        return Extraction(concl, "phrase", "conclusion sentence")
    # 7. bare answer (whole text) -- before last_number so that "x = 5" stays an equation
    stripped = tail.strip()
    if choice:
        ch = extract_choice(stripped) if len(stripped) <= 300 else None
        if ch:
            return Extraction(ch, "bare", "choice letter")
    if stripped and (is_gold or len(stripped) <= 2000) and not _has_prose(stripped):
        return Extraction(stripped, "bare", "bare answer")
    prose_len = len(_strip_spans(stripped, "$")) if len(stripped) <= 2000 else len(stripped)
    one_sentence = (prose_len <= 100 and "\n" not in stripped and not re.search(r"[.!]\s+[A-Za-z]", stripped)
                    and not _TRUNCATED.search(stripped))
    if stripped and (one_sentence or is_gold):
        a = answer_from_prose(stripped)
        if a:
            return Extraction(a, "bare", "short statement")
        if one_sentence:
            return Extraction(stripped, "bare", "bare text answer")
    # 8. last number
    if last_number_fallback:
        nums = list(_NUMBER_IN_TEXT.finditer(tail))
        if nums:
            return Extraction(nums[-1].group().strip(), "last_number", "last number in the text")
    return Extraction(None, None, "no final answer found")


def _strip_span(a: str) -> str:
    a = a.strip()
    inner = _math_span_at(a)
    if inner is not None and _math_span_at(a) and len(inner) + 2 >= len(a) - 2:
        return inner
    return a


def _conclusion(tail: str) -> Optional[str]:
    """The value stated by a complete final sentence that starts with a conclusion word."""
    t = _HOPE.sub("", tail.rstrip()).rstrip()  # (no leading \s* in _HOPE: it would be quadratic)
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
    if len(sent) > 400 or not _CONCLUDE.match(sent):
        return None
    if not _COPULA.search(sent):
        return None
    return answer_from_prose(sent)
