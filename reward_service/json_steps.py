"""Parse a request body (a JSON object) in small steps, never holding the interpreter for long.

``json.loads`` of a 100 MB body is one C call: about 0.1-0.5 s during which no other thread of the server runs
(its /health answered in 172 ms during a single 32 MB body). Here the body is decoded from UTF-8 one window
(1 MiB) at a time and the arrays of the top-level object are parsed one element at a time with the C scanner
(``JSONDecoder.raw_decode``), so the longest step is bounded by the window or by the largest single element,
and the parser is a generator that yields between steps (``reward_service.offload`` interleaves the steps of
concurrent requests). The whole body is never copied into one string.

An element is accepted only when a delimiter follows it inside the decoded text (a number cut by the window
end, ``12`` of ``12345``, is not taken for the whole); a value cut by the window end is parsed again with a
window twice as large, so a long element costs linear time.
"""
from __future__ import annotations

import codecs
import json
import re
from typing import Any, Generator

WINDOW = 1 << 20  # bytes decoded at a time
STEP_ELEMENTS = 256  # array elements parsed between two yields
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_KINDS = {str: "a string", bool: "a boolean", int: "a number", float: "a number", type(None): "null"}


class JSONBodyError(ValueError):
    """Malformed JSON (or not UTF-8) at character ``pos`` of the body."""

    def __init__(self, msg: str, pos: int):
        super().__init__(f"{msg} (character {pos})")
        self.msg, self.pos = msg, pos


class NotAnObject(ValueError):
    """The body is valid JSON so far but not an object."""


class TooManyElements(ValueError):
    """An array of the body has more than ``limit`` elements."""

    def __init__(self, key: str, limit: int):
        super().__init__(f"'{key}' has more than {limit} entries")
        self.key, self.limit = key, limit


class _Text:
    """The body decoded a window at a time: ``buf`` holds the text from absolute character ``offset`` on."""

    def __init__(self, body: bytes, window: int):
        self.view = memoryview(body)
        self.read = 3 if bytes(self.view[:3]) == codecs.BOM_UTF8 else 0  # bytes decoded so far
        self.base_window = self.window = window
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.offset = 0
        self.i = 0  # parse position in buf
        self.more()

    @property
    def exhausted(self) -> bool:
        return self.read >= len(self.view)

    def more(self, grow: bool = False) -> None:
        """Append the next window (twice the last one when ``grow``: the value at ``i`` did not fit)."""
        if grow:
            self.window *= 2
        n = min(self.window, len(self.view) - self.read)
        try:
            piece = self.decoder.decode(self.view[self.read:self.read + n], final=self.read + n >= len(self.view))
        except UnicodeDecodeError as e:
            at = self.read + e.start
            raise JSONBodyError(f"the body is not valid UTF-8 (byte {at} is {bytes(self.view[at:at + 1])!r})",
                                self.offset + len(self.buf)) from None
        self.read += n
        self.offset += self.i
        self.buf = self.buf[self.i:] + piece
        self.i = 0

    def skip_ws(self) -> None:
        while True:
            self.i = _WS.match(self.buf, self.i).end()
            if self.i < len(self.buf) or self.exhausted:
                return
            self.more()

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the body)."""
        self.skip_ws()
        return self.buf[self.i:self.i + 1]

    def value(self) -> Any:
        """Parse the value at the current position (loading more text while it may have been cut off)."""
        self.skip_ws()
        while True:
            try:
                v, end = _DECODER.raw_decode(self.buf, self.i)
            except json.JSONDecodeError as e:
                cut = e.pos >= len(self.buf) - 16 or e.msg.startswith("Unterminated string")
                if cut and not self.exhausted:
                    self.more(grow=True)
                    continue
                raise JSONBodyError(e.msg, self.offset + e.pos) from None
            j = _WS.match(self.buf, end).end()
            if self.exhausted or (j < len(self.buf) and (self.buf[j] in ",:]}" or j < len(self.buf) - 16)):
                self.i = j
                self.window = self.base_window
                return v
            self.more(grow=True)  # near the end of the text so far: the value may go on in the next window

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            raise JSONBodyError(f"Expecting {what}", self.offset + self.i)
        self.i += 1


def parse_object(body: bytes, max_array_len: int, window: int = WINDOW) -> Generator[None, None, dict]:
    """Generator: yields between steps and returns the parsed top-level object (``yield from`` it).

    Raises JSONBodyError (malformed JSON or not UTF-8, with the character position), NotAnObject, and
    TooManyElements as soon as a top-level array passes ``max_array_len`` (before parsing the rest).
    """
    t = _Text(body, window)
    first = t.peek()
    if first != "{":
        kind = "an array" if first == "[" else _type_name(t.value())  # a scalar: parse it for a precise error
        raise NotAnObject(f"the body must be a JSON object, not {kind}")
    t.i += 1
    out: dict = {}
    if t.peek() == "}":
        t.i += 1
    else:
        while True:
            if t.peek() != '"':
                raise JSONBodyError("Expecting property name enclosed in double quotes", t.offset + t.i)
            key = t.value()
            t.expect(":", "':' delimiter")
            if t.peek() == "[":
                out[key] = yield from _array(t, key, max_array_len)
            else:
                out[key] = t.value()
            c = t.peek()
            t.i += 1
            if c == "}":
                break
            if c != ",":
                raise JSONBodyError("Expecting ',' delimiter", t.offset + t.i - 1)
            yield
    if t.peek():
        raise JSONBodyError("Extra data", t.offset + t.i)
    return out


def _type_name(v: Any) -> str:
    return _KINDS.get(type(v), type(v).__name__)


def _array(t: _Text, key: str, max_len: int) -> Generator[None, None, list]:
    t.i += 1
    items: list = []
    if t.peek() == "]":
        t.i += 1
        return items
    last_yield = t.offset
    while True:
        items.append(t.value())
        if len(items) > max_len:
            raise TooManyElements(key, max_len)
        c = t.peek()
        t.i += 1
        if c == "]":
            return items
        if c != ",":
            raise JSONBodyError("Expecting ',' delimiter", t.offset + t.i - 1)
        if len(items) % STEP_ELEMENTS == 0 or t.offset - last_yield > WINDOW:
            last_yield = t.offset
            yield
