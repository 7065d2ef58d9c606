"""The response part of an OpenRLHF query: the text the model wrote, without its prompt.

OpenRLHF sends ``query`` = prompt + response, decoded with special tokens kept, and (usually) the prompt. The
response is what follows the prompt in the query, found in linear time:

1. the prompt as it is (usually a prefix; padding or a BOS token may precede it);
2. the prompt with all whitespace ignored (detokenization may add, drop or change whitespace): both texts are
   squeezed with one C-level regex substitution and searched with ``str.find``, whose worst case is linear in
   CPython >= 3.10 (two-way search); the end of the match is mapped back to the query by counting non-space
   runs up to it.
3. When the prompt cannot be found (OpenRLHF left-truncates long prompts; a client sends none), the text after
   the *last* assistant-turn marker of a common chat template (``ASSISTANT_MARKERS``) is graded, never a
   system prompt or a user turn (a system prompt's "put your answer in \\boxed{}" must not be read as an empty
   answer). Without any marker the whole query is graded, as before.

A response that continues a ``<think>`` opened by the template (DeepSeek-R1's generation prompt
``<｜Assistant｜><think>\\n``, R1-Zero's ``Assistant: <think>``) keeps that ``<think>``: a response cut off
in the middle of its reasoning is then ``no_answer``, not graded on a number it was still thinking about.

Markers, as the models' own chat templates write their generation prompt (tokenizer_config.json
``chat_template``): Qwen2.5 / ChatML ``<|im_start|>assistant\\n``; Llama-3 / 3.1
``<|start_header_id|>assistant<|end_header_id|>\\n\\n``; DeepSeek-R1 and its distills ``<｜Assistant｜>``
(U+FF5C bars; the R1 distills' template appends ``<think>\\n``); Phi-3 ``<|assistant|>``; Gemma
``<start_of_turn>model``; DeepSeek-R1-Zero's plain-text prompt ``Assistant: <think>``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

THINK_OPEN = "<think>"

# (name, marker, kept): the response starts right after the marker and the newline(s) the template writes after
# it, except that the marker's ``kept`` tail (an opening <think>) belongs to the response.
ASSISTANT_MARKERS: tuple[tuple[str, str, str], ...] = (
    ("chatml", "<|im_start|>assistant", ""),
    ("llama3", "<|start_header_id|>assistant<|end_header_id|>", ""),
    ("deepseek", "<\uff5cAssistant\uff5c>", ""),
    ("phi3", "<|assistant|>", ""),
    ("gemma", "<start_of_turn>model", ""),
    ("r1_zero", "Assistant: <think>", THINK_OPEN),
)

# The prompt is searched for in the first len(prompt) * 4 + SEARCH_SLACK characters of the query only: it comes
# first (after padding / BOS tokens), so the cost does not grow with the response.
SEARCH_SLACK = 1 << 18

_SPACE_RUN = re.compile(r"\s+")
_NONSPACE_RUN = re.compile(r"\S+")


@dataclass(frozen=True)
class Split:
    """What to grade, and how it was found."""

    response: str
    prompt_found: bool  # False: a prompt was given but is not in the query (True when none was given)
    marker: Optional[str] = None  # the template whose last assistant marker the response follows, if one was used


def split_response(query: str, prompt: Optional[str]) -> Split:
    """The response part of ``query`` (see the module docstring). Linear time in ``len(query) + len(prompt)``."""
    if prompt:
        end = find_prompt_end(query, prompt)
        if end is not None:
            response = query[end:]
            if prompt.rstrip().endswith(THINK_OPEN) and not response.lstrip().startswith(THINK_OPEN):
                response = THINK_OPEN + response  # the template opened the reasoning block: keep it open
            return Split(response, True)
    after = after_last_assistant_marker(query)
    if after is not None:
        return Split(after[0], not prompt, after[1])
    return Split(query, not prompt)


def find_prompt_end(query: str, prompt: str) -> Optional[int]:
    """Index in ``query`` just after the first occurrence of ``prompt`` (exactly, else ignoring whitespace), searched
    for near the start of the query (``SEARCH_SLACK``)."""
    if query.startswith(prompt):
        return len(prompt)
    window = len(prompt) * 4 + SEARCH_SLACK
    i = query.find(prompt, 0, window)
    if i >= 0:
        return i + len(prompt)
    squeezed_prompt = _SPACE_RUN.sub("", prompt)
    if not squeezed_prompt:
        return None
    j = _SPACE_RUN.sub("", query[:window]).find(squeezed_prompt)
    if j < 0:
        return None
    return _after_nth_nonspace(query, j + len(squeezed_prompt))


def _after_nth_nonspace(text: str, n: int) -> int:
    """Index just after the ``n``-th (1-based) non-whitespace character of ``text`` (which has at least n)."""
    seen = 0
    for m in _NONSPACE_RUN.finditer(text):
        k = m.end() - m.start()
        if seen + k >= n:
            return m.start() + (n - seen)
        seen += k
    raise ValueError(f"text has fewer than {n} non-whitespace characters")


def after_last_assistant_marker(query: str) -> Optional[tuple[str, str]]:
    """(text after the last assistant-turn marker, the template's name), or None when there is no marker."""
    best = None  # (position, name, marker, kept)
    for name, marker, kept in ASSISTANT_MARKERS:
        i = query.rfind(marker)
        if i >= 0 and (best is None or i > best[0]):
            best = (i, name, marker, kept)
    if best is None:
        return None
    i, name, marker, kept = best
    if kept:
        return query[i + len(marker) - len(kept):], name
    return query[i + len(marker):].lstrip("\n"), name  # without the newline(s) the template writes after it
