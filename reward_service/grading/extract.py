"""Find the final answer in a completion.

Order (the first rule that finds something wins; see :func:`extract`):

0. Text after the end of the turn (``<|im_end|>``, ``<|endoftext|>``, ``</s>``, a new ``<|im_start|>``...) is a
   hallucinated continuation and is dropped; when the completion carries the chat transcript, reading starts
   after the last assistant header.
1. Reasoning is skipped: only the text after the last ``</think>`` is read. A ``<think>`` left open at the
   end (no ``</think>`` after it) means the output stopped mid-reasoning: the verdict is ``no_answer``.
2. ``answer_tag``: the last closed ``<answer>…</answer>``; a ``\\boxed{}`` inside it is unwrapped; an empty
   tag, an unclosed box or a refusal inside it is ``no_answer``. An unclosed ``<answer>`` is read on with the
   other rules (vLLM drops a ``</answer>`` stop string from the output).
3. ``boxed``: the last ``\\boxed{…}`` / ``\\fbox{…}`` / ``\\boxed N``. If the last box is not closed (a truncated
   output) the verdict is ``no_answer``. Boxes just before it that are joined to it only by separators
   (``,``, ``;``, "and", "or", ``\\quad``, a ``y =`` label) belong to the same final span and together form one
   set answer, so ``\\boxed{1}\\boxed{2}\\boxed{3}`` is the answer ``{1, 2, 3}``, never ``3``. A box whose
   content is a sentence with an answer phrase (``\\boxed{\\text{The answer is } 5}``) is reduced to its value.
   Empty boxes are ignored ("put the final answer in ``\\boxed{}``"); only empty boxes is ``no_answer``.
   A strong "final answer is $X$" statement *after* the last box overrides it.
4. ``minerva`` ("Final Answer: The final answer is X. I hope it is correct.") and ``phrase``
   ("final answer is", "the answer is", "Answer:", "答案是", "答え:", "Ответ:", "la respuesta es", "la réponse est",
   "Antwort:"; not "the answer is not"): the last occurrence; the answer
   is the math span right after it (several spans joined by ``,`` / and / or form one list answer:
   ``$6764$,$10945$``), else the rest of the sentence (reduced by :func:`.prose.answer_from_prose`).
5. ``gsm8k``: the last ``#### N`` line.
6. ``phrase`` (conclusion): a last, complete sentence starting with "Therefore/Thus/So/Hence…" that states
   a value ("Therefore, the probability is 2/3."), see :func:`.prose.conclusion`.
7. ``bare``: the completion itself is an answer only if it looks like one (:func:`.prose.bare_answer`: math on
   one line, a few words that are not filler, or one short statement that ends on its value).
8. ``display``: a response (in any language) whose last thing is a display-math block ``\\[ … \\]`` / ``$$ … $$``
   (only punctuation after it) states its answer there: the block's content, the last row of an
   ``aligned`` / ``gathered`` block (``&= 42``), a cut-off block (ending on an operator) is no answer. A block
   followed by more text is a step of the reasoning, not the answer.
9. ``last_number``: only when asked (GSM8K-style schemes).

Anything else is ``no_answer``; so is an extracted answer that is a refusal or a placeholder
(:func:`.prose.non_answer`), checked by :func:`reward_service.grading.grade`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .normalize import fix_escapes
from .choice import MULTI, extract_choice
from .prose import (_NUMBER_IN_TEXT, answer_from_prose, bare_answer, conclusion, has_prose,
                    joined_spans, math_cut, math_span_at, non_answer)

__all__ = ["Extraction", "extract", "extract_choice", "find_boxes", "split_think", "end_of_turn"]


@dataclass
class Extraction:
    answer: Optional[str]
    method: Optional[str]
    reason: str
    parts: Optional[list] = None  # several boxed answers that form one set answer


MAX_SCAN = 200_000  # only the last MAX_SCAN characters of the visible text are searched for boxes
PHRASE_SCAN = 20_000  # and the last PHRASE_SCAN for phrases, "####", conclusions

_BOX = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_TURN_END = re.compile(r"<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|eom_id\|>|</s>|<\|end\|>|<\|im_start\|>|"
                       r"<\|start_header_id\|>|<\|user\|>|<\|assistant\|>|<\|end_of_text\|>|<end_of_turn>|<start_of_turn>")
_ASSISTANT_HEADER = re.compile(r"<\|im_start\|>\s*assistant\b|<\|assistant\|>|<\|start_header_id\|>\s*assistant\s*"
                               r"<\|end_header_id\|>|<start_of_turn>\s*model\b")

_MINERVA = re.compile(r"final\s+answer\s*:\s*the\s+final\s+answer\s+is\s*:?\s*(?P<a>.{0,600}?)\s*\.?\s*I\s+hope\s+it\s+is\s+correct", re.I | re.S)
_NOT = r"(?!\s*(?:not\b|n['’]t\b))"
_PHRASE = re.compile(
    r"(?:final\s+answer\s*(?:is|:|=|would\s+be|will\s+be|should\s+be)" + _NOT +
    r"|(?<![a-z])answer\s+(?:is|would\s+be|will\s+be|should\s+be|must\s+be)" + _NOT + r"(?:\s*:)?"
    r"|(?<![a-z])answer\s*(?:\*\*)?\s*:"
    r"|(?:^|\n)[ \t]*(?:#+[ \t]*|\*\*)?(?:final[ \t]+)?answer[ \t]*(?:\*\*)?[ \t]*(?=\n)"  # "**Final Answer**\n42"
    r"|(?:最终)?答案\s*(?:是|为|:|：)"  # Chinese "the answer is"
    r"|(?<![a-z])answer\s*(?=\\\(|\\\[|\$))",
    re.I,
)
# answer phrases in other languages: a separate pattern, scanned only when one of its words occurs (every extra
# alternative in _PHRASE costs a little at every position of every completion)
_PHRASE_INTL = re.compile(
    r"答え\s*(?:は|:|：)|ответ\s*(?::|：|—|-)"  # Japanese, Russian
    r"|(?<![a-z])(?:respuesta|r[ée]ponse|antwort|risposta|resposta)(?:\s+(?:final|finale|finalmente))?\s*"
    r"(?:es|est|ist|è|é|:)(?![a-z])", re.I)
_INTL_LATIN = ("espuesta", "ponse", "ntwort", "sposta")
_INTL_OTHER = ("твет", "ТВЕТ", "答え")
_GSM = re.compile(r"####\s*([^\n]*)")


def end_of_turn(text: str) -> str:
    """The assistant's turn only: up to the first end-of-turn token; a completion that starts with a chat token
    is a whole transcript, read from after its last assistant header."""
    if "<" not in text:
        return text
    if re.match(r"\s*<(?:\|[a-z_]+\||start_of_turn|bos)", text):
        heads = list(_ASSISTANT_HEADER.finditer(text))
        if heads:
            text = text[heads[-1].end():]
    m = _TURN_END.search(text)
    return text[: m.start()] if m else text


def split_think(text: str) -> tuple[str, Optional[str]]:
    """The visible (non-reasoning) text; the second value is a no_answer reason or None.

    A ``<think>`` that is still open at the end (no ``</think>`` after it) means the output stopped in the
    middle of reasoning: whatever was written before it, the completion has no final answer."""
    low = text.lower() if "<" in text else ""
    k = low.rfind("</think>")
    last_close = k + len("</think>") if k >= 0 else 0
    if low.find("<think>", last_close) >= 0:
        return "", "unterminated <think>"
    return text[last_close:], None


_BRACE_TOKEN = re.compile(r"\\[\s\S]|[{}]")


def _brace_pairs(text: str, start: int = 0) -> dict[int, int]:
    """Position of the matching ``}`` for every ``{`` from ``start`` on (escaped ``\\{`` / ``\\}`` skipped), in one
    pass over the braces and backslashes only."""
    pairs, stack = {}, []
    for m in _BRACE_TOKEN.finditer(text, start):
        c = m.group()
        if c == "{":
            stack.append(m.start())
        elif c == "}" and stack:
            pairs[stack.pop()] = m.start()
    return pairs


MAX_BOXES = 64  # only the last MAX_BOXES boxes are read (a final span holds at most that many answers)
_BARE_TOKEN = re.compile(r"[^\s$]+")


def _last_boxes(text: str) -> list[re.Match]:
    """The last MAX_BOXES matches of _BOX, found from the end (no scan of a long head full of boxes)."""
    starts = []
    for name in ("\\boxed", "\\fbox"):
        end, k = len(text), 0
        while k < MAX_BOXES:
            j = text.rfind(name, 0, end)
            if j < 0:
                break
            end = j
            m = _BOX.match(text, j)
            if m:
                starts.append(m)
                k += 1
    starts.sort(key=lambda m: m.start())
    return starts[-MAX_BOXES:]


def find_boxes(text: str) -> list[tuple[int, int, Optional[str]]]:
    """The last MAX_BOXES ``\\boxed``/``\\fbox`` as (start, end, content); content None when the box is not
    closed. Linear time: braces are matched in one pass and only the kept boxes' contents are copied."""
    found = []
    pairs = None
    n = len(text)
    kept = _last_boxes(text)
    for m in kept:
        i = m.end()
        while i < n and text[i] in " \t\n":
            i += 1
        if i < n and text[i] == "{":
            if pairs is None:
                pairs = _brace_pairs(text, kept[0].start())
            close = pairs.get(i, -1)
            found.append((m.start(), n, None) if close < 0 else (m.start(), close + 1, (i + 1, close)))
        elif i > m.end() and i < n:
            mm = _BARE_TOKEN.match(text, i)
            found.append((m.start(), mm.end() if mm else i, (i, mm.end()) if mm else None))
        else:
            found.append((m.start(), min(n, i), None))
    out = []
    for start, end, span in found:
        content = None
        if span is not None:
            content = text[span[0]: span[1]]
            if text[span[0] - 1] != "{":
                content = re.sub(r"[.,;]+$", "", content)  # "\\boxed 5."
            content = content.strip() or (None if text[span[0] - 1] != "{" else "")
        out.append((start, end, content))
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
        if c not in uniq and (c or len(contents) == 1):
            uniq.append(c)  # an empty box next to answers adds nothing; alone it is no answer
    return uniq or [""], last[1]


def _phrase_start(tail: str) -> int:
    """Where a scan for answer phrases may start: every phrase of _PHRASE contains "answer" or "答案", so the scan
    starts a little before the first of them (the whole tail when there is none: the scan then finds nothing)."""
    low = tail.lower()
    first = min((k for k in (low.find("answer"), tail.find("答案")) if k >= 0), default=len(tail))
    return max(0, first - 64)


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
    spans = joined_spans(rest)  # "$x = 3$ or $x = -3$": one answer
    if spans is not None:
        return spans
    if _cut_math(rest):
        return None  # "The final answer is $\\frac{1}{2": the output stopped inside the math
    # up to the end of the sentence / line
    mm = re.search(r"\n|(?<![0-9])\.(?=\s|$)|\.(?=\s+[A-Z])|$", rest)
    sent = rest[: mm.start()] if mm else rest
    sent = re.sub(r"(?<=\d)!+$", "", sent[:400].strip())  # "the answer is 5!" is excitement, not 120
    if not sent:
        return None
    # a plain value right away: keep it whole ("(0, 1)", "12,000,023", "x = 5")
    if not has_prose(sent):
        return sent
    return answer_from_prose(sent, first=True)


def _cut_math(rest: str) -> bool:
    """A math span opened right after an answer phrase and never closed: a truncated output. A lone ``$``
    before a plain number is money ("The answer is $18", "$1,000.50 in total")."""
    r = rest.strip()
    if r.startswith(("\\(", "\\[", "$$")):
        return math_span_at(r) is None
    if r.startswith("$") and r.find("$", 1) < 0:
        return not re.match(r"\$\s*\d[\d,]*(?:\.\d+)?(?![\d^_{\\/])", r)
    return False


def _box_answer(content: str) -> str:
    """A box holding a sentence with an answer phrase is reduced to its value ("\\text{The answer is } 5")."""
    if "answer" not in content.lower() or len(content) > 400:
        return content
    flat = re.sub(r"\\(?:text|textbf|mbox|mathrm)\s*\{([^{}]*)\}", r" \1 ", content)
    pm = None
    for m in _PHRASE.finditer(flat):
        pm = m
    a = _phrase_answer(flat, pm) if pm is not None else None
    return a.strip() if a and a.strip() else content


def _tag_answer(inner: str, choice: bool) -> Extraction:
    """What a closed ``<answer>`` tag holds: a box inside, an answer phrase, or the content itself."""
    if len(inner) > 5_000 and "\\boxed" not in inner[-5_000:]:
        return Extraction(inner, "answer_tag", "answer tag")  # compared as a string only (grade's size limit)
    sub = extract(inner, choice=choice, is_gold=True)
    if sub.method == "boxed" and sub.answer is None or sub.reason == "unclosed box in the gold":
        return Extraction(None, "answer_tag", "unclosed \\boxed in <answer>")
    if sub.answer is None:
        return Extraction(None, "answer_tag", sub.reason)
    return Extraction(sub.answer, "answer_tag", "answer tag", sub.parts)


def extract(completion: str, *, last_number_fallback: bool = False, choice: bool = False,
            is_gold: bool = False) -> Extraction:
    """Find the final answer of a completion (see the module docstring for the order of the rules).

    ``choice``: the gold is a multiple-choice letter, so prose like "the answer is for sure D" is reduced to
    the letter. ``is_gold``: the text is a reference solution or answer (no length limit on a bare answer,
    any short statement is read).
    """
    text = fix_escapes(completion) if ("\\\\" in completion or "\x0c" in completion or "\x08" in completion) else completion
    text = end_of_turn(text)
    visible, why = split_think(text)
    if why:
        return Extraction(None, None, why)
    if len(visible) > MAX_SCAN:
        visible = visible[-MAX_SCAN:]
    if not visible.strip():
        return Extraction(None, None, "nothing after </think>" if text.strip() else "empty completion")

    # 2. <answer> ... </answer>
    low = visible.lower() if "<" in visible else ""
    o = low.rfind("<answer>")
    if o >= 0:
        c = low.find("</answer>", o)
        if c < 0 and not visible[o + len("<answer>"):].strip():
            # "<answer>5</answer><answer>": a stray opening tag at the very end; the last closed tag counts
            o = low.rfind("<answer>", 0, o)
            c = low.find("</answer>", o) if o >= 0 else -1
        if c >= 0:
            inner = visible[o + len("<answer>"): c].strip()
            if not inner:
                return Extraction(None, "answer_tag", "empty <answer>")
            return _tag_answer(inner, choice)
        # unclosed tag: read what follows it with the other rules
        visible = visible[o + len("<answer>"):]

    # 3. boxes
    boxes = find_boxes(visible)
    empty_box = any(b[2] == "" for b in boxes)
    boxes = [b for b in boxes if b[2] != ""]  # "put the answer in \\boxed{}" is an instruction, not an answer
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
        parts = [_box_answer(p) for p in parts]
        boxed = Extraction(", ".join(parts) if len(parts) > 1 else parts[0], "boxed",
                           "boxed" if len(parts) == 1 else f"{len(parts)} boxed answers form one set",
                           parts if len(parts) > 1 else None)

    tail = visible[-PHRASE_SCAN:]
    box_end -= len(visible) - len(tail)
    # 4. phrases (and Minerva's format); after a box only a strong statement with a math value overrides
    mv = None
    for m in _MINERVA.finditer(tail):
        mv = m
    pm = None
    for m in _PHRASE.finditer(tail, _phrase_start(tail)):
        pm = m
    if any(w in tail for w in _INTL_LATIN) or not tail.isascii() and any(w in tail for w in _INTL_OTHER):
        for m in _PHRASE_INTL.finditer(tail):
            if pm is None or m.start() > pm.start():
                pm = m
    if boxed is not None:
        for m, method in ((mv, "minerva"), (pm, "phrase")):
            if m is not None and m.start() > box_end and re.match(r"(?i)final", m.group()):
                after = m.group("a") if method == "minerva" else re.sub(r"^[\s*:]+", "", tail[m.end():])
                a = joined_spans(after) if method == "minerva" else _phrase_answer(tail, m)
                if a and (math_span_at(after) is not None or method == "phrase" and not has_prose(a)):
                    return Extraction(_strip_span(a), method, "final answer statement after the box")
        return boxed
    if mv is not None and (pm is None or mv.end() >= pm.start()):
        a = mv.group("a").strip()
        a2 = joined_spans(a)
        a = a2 if a2 is not None else (a if not has_prose(a) else answer_from_prose(a))
        if a:
            return Extraction(_strip_span(a), "minerva", "minerva final answer")
    if pm is not None:
        a = _phrase_answer(tail, pm)
        if choice:
            ch = extract_choice(tail[pm.start():])
            if ch:
                return Extraction(ch if ch != MULTI else (a or ch), "phrase", "answer phrase")
        if a:
            return Extraction(_strip_span(a), "phrase", "answer phrase")
        if _cut_math(re.sub(r"^[\s*:]+", "", tail[pm.end():])):
            return Extraction(None, "phrase", "output cut off inside the answer's math")
    # 5. GSM8K
    gm = None
    for m in _GSM.finditer(tail):
        gm = m
    if gm is not None and gm.group(1).strip():
        return Extraction(gm.group(1).strip(), "gsm8k", "#### line")
    # 6. conclusion sentence
    concl = conclusion(tail)
    if concl:
        return Extraction(concl, "phrase", "conclusion sentence")
    # 7. bare answer (whole text) -- before last_number so that "x = 5" stays an equation
    stripped = tail.strip()
    if choice:  # a choice letter on the last line ("... we get\n(B)"), not one met on the way
        last = stripped.rsplit("\n", 1)[-1].strip() if len(stripped) <= 300 else ""
        ch = extract_choice(stripped if last == stripped else last) if last else None
        if ch:
            return Extraction(ch if ch != MULTI else stripped, "bare", "choice letter")
    if is_gold and not empty_box:
        ex = _gold_bare(stripped)
        if ex is not None:
            return ex
    elif not empty_box:
        bare = bare_answer(stripped)
        if bare is not None:
            return Extraction(bare[0], "bare", bare[1])
    # 8. a display block that ends the response
    if not empty_box:
        disp = final_display(tail)
        if disp is not None:
            return Extraction(disp, "display", "display math at the end")
    # 9. last number
    if last_number_fallback:
        nums = list(_NUMBER_IN_TEXT.finditer(tail))
        if nums:
            return Extraction(nums[-1].group().strip(), "last_number", "last number in the text")
    if stripped and non_answer(stripped):
        return Extraction(None, None, "refusal")
    return Extraction(None, None, "empty \\boxed" if empty_box else "no final answer found")


_ROWS_ENV = re.compile(r"\\begin\{(aligned|align\*?|gathered|gather\*?|split|eqnarray\*?|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S)
_DISPLAY_TAIL = " \t\n.。!！"


def final_display(tail: str) -> Optional[str]:
    """The content of a display-math block that ends the text (rule 8 of the module docstring), else None."""
    t = tail.rstrip(_DISPLAY_TAIL)
    if t.endswith("\\]"):
        j = t.rfind("\\[")
        inner = t[j + 2: -2] if j >= 0 else None
    elif t.endswith("$$") and len(t) > 4:
        j = t.rfind("$$", 0, len(t) - 2)
        inner = t[j + 2: -2] if j >= 0 else None
    else:
        return None
    if inner is None or not t[:j].strip() or len(inner) > 1000 or "\\[" in inner or "$$" in inner:
        return None
    inner = re.sub(r"\\(?:tag|label)\*?\{[^{}]*\}|\\(?:notag|nonumber)\b", " ", inner)
    env = _ROWS_ENV.search(inner)
    if env:  # the last row of an aligned derivation: "&= 42"
        rows = [r for r in re.split(r"\\\\(?:\[[^\]]*\])?", env.group(2)) if r.strip()]
        if not rows:
            return None
        inner = re.sub(r"^\s*=", "", rows[-1].replace("&", " ")).strip()
    inner = inner.strip()
    if not inner or len(inner) > 400 or math_cut(inner):
        return None
    return _box_answer(inner)  # math (point names such as ABQ are no prose); "\\text{The answer is } 5" is 5


def _gold_bare(stripped: str) -> Optional[Extraction]:
    """A reference answer (or an answer tag's content) without markers: math as is, a sentence reduced."""
    if not stripped or non_answer(stripped):
        return None
    if not has_prose(stripped):
        return Extraction(stripped, "bare", "bare answer")
    a = answer_from_prose(stripped)
    if a:
        return Extraction(a, "bare", "short statement")
    if len(stripped) <= 300:
        return Extraction(stripped, "bare", "bare text answer")
    return None


def _strip_span(a: str) -> str:
    a = a.strip()
    inner = math_span_at(a)
    if inner is not None and len(inner) + 2 >= len(a) - 2:
        return inner
    return a
