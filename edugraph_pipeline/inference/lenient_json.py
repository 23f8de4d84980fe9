"""Finding the JSON object in a model's text: strictly when it parses, otherwise leniently.

`extract_object` takes the text as it stands, then the contents of code fences and the prose around them, and
falls back to a forgiving parser that accepts single quotes, bare words, trailing or missing commas, Python
literals and a truncated end (open strings, lists and objects are closed). It knows nothing of the ontology.
"""

from __future__ import annotations

import json
import re
from typing import Any

BARE_LIST_KEY = "_labels"  # the key a bare list (no object around it) is returned under
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*(.*?)(?:```|$)", re.DOTALL)


class _Lenient:
    """A forgiving parser for JSON-like text; stops quietly at the end of input (truncation)."""

    _BARE_END = set(",:]}[{\"'") | set(" \t\r\n")

    def __init__(self, text: str, start: int = 0):
        self.s = text
        self.i = start
        self.truncated = False

    def _ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def _eof(self) -> bool:
        self._ws()
        return self.i >= len(self.s)

    def value(self) -> Any:
        if self._eof():
            self.truncated = True
            return None
        c = self.s[self.i]
        if c == "{":
            return self.obj()
        if c == "[":
            return self.arr()
        if c in "\"'":
            return self.string()
        return self.bare()

    def obj(self) -> dict:
        self.i += 1  # '{'
        out: dict = {}
        while True:
            if self._eof():
                self.truncated = True
                return out
            c = self.s[self.i]
            if c == "}":
                self.i += 1
                return out
            if c in ",;":
                self.i += 1
                continue
            if c == "]":  # stray closer
                self.i += 1
                continue
            key = self.value() if c in "\"'{[" else self.bare()
            if self._eof():
                self.truncated = True
                if key is not None and not isinstance(key, (dict, list)):
                    out.setdefault(str(key), None)
                return out
            if self.s[self.i] in ":=":
                self.i += 1
                val = self.value()
            elif self.s[self.i] in "[{\"'":  # missing colon
                val = self.value()
            else:
                val = None
            if isinstance(key, (dict, list)):
                continue
            out[str(key)] = val

    def arr(self) -> list:
        self.i += 1  # '['
        out: list = []
        while True:
            if self._eof():
                self.truncated = True
                return out
            c = self.s[self.i]
            if c == "]":
                self.i += 1
                return out
            if c in ",;":
                self.i += 1
                continue
            if c == "}":  # object closed inside the list: treat the list as closed, leave '}' to the object
                return out
            out.append(self.value())

    def string(self) -> str:
        quote = self.s[self.i]
        self.i += 1
        chars: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < len(self.s):
                nxt = self.s[self.i + 1]
                if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", self.s[self.i + 2 : self.i + 6] or ""):
                    chars.append(chr(int(self.s[self.i + 2 : self.i + 6], 16)))
                    self.i += 6
                    continue
                chars.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(nxt, nxt))
                self.i += 2
                continue
            if c == quote:
                self.i += 1
                return "".join(chars)
            if c == "\n" and quote == "'":  # an apostrophe inside prose, not a string: stop at the line
                return "".join(chars)
            chars.append(c)
            self.i += 1
        self.truncated = True
        return "".join(chars)

    def bare(self) -> Any:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in self._BARE_END:
            self.i += 1
        if self.i == start:  # a lone separator we do not understand: skip it
            self.i += 1
            return None
        word = self.s[start : self.i]
        literal = {"true": True, "false": False, "null": None, "none": None}
        if word.lower() in literal:
            return literal[word.lower()]
        try:
            return json.loads(word)
        except ValueError:
            return word


def _candidates(text: str) -> list[str]:
    """The text itself, then the contents of code fences (a fenced object wins over prose braces)."""
    fenced = [m.group(1) for m in _FENCE.finditer(text)]
    return fenced + [text]


def extract_object(raw: str) -> tuple[dict | None, bool, bool]:
    """``(object, parsed_ok, repaired)``: the first JSON object of `raw`, parsed strictly when possible."""
    stripped = raw.strip()
    try:
        whole = json.loads(stripped)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return whole, True, False
    decoder = json.JSONDecoder()
    for text in _candidates(raw):
        for match in re.finditer(r"\{", text):
            try:
                obj, _ = decoder.raw_decode(text, match.start())
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj, False, True
    for text in _candidates(raw):
        start = text.find("{")
        if start < 0:
            continue
        obj = _Lenient(text, start).obj()
        if obj:
            return obj, False, True
    # a bare list of labels (no object): accept it as labels of unknown dimension
    for text in _candidates(raw):
        start = text.find("[")
        if start >= 0:
            items = _Lenient(text, start).arr()
            if items:
                return {BARE_LIST_KEY: items}, False, True
    return None, False, False
