"""Model text -> a guaranteed-valid answer in the upstream format, with a record of every repair.

`parse_answer(raw, ontology)` never raises. It

1. extracts the first JSON object of the text (code fences, prose around it), parsing it strictly if it can and
   otherwise with a lenient parser that accepts single quotes, bare words, trailing or missing commas,
   Python literals and a truncated end (open strings, lists and objects are closed);
2. recognises the refusal ``{"Error": "UnsupportedMaterial"}`` (also as bare text when no object is found);
3. normalises every label to a concept name of the bound ontology: IRIs of any release namespace, case and
   separators (``"integer addition"`` -> ``IntegerAddition``) and, optionally, one unambiguous close match
   (difflib, high cutoff, digits must agree: ``NumbersSmaller10`` never becomes ``NumbersSmaller100``);
4. files every concept under the dimension the ontology gives it (moves are reported) and drops unknown names.

The result's `answer` is always ``{"Area": [...], "Scope": [...], "Ability": [...]}`` with sorted, unique
ontology names (possibly empty lists), or exactly ``{"Error": "UnsupportedMaterial"}``.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL, format_answer, format_unsupported
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology, concept_name

DEFAULT_FUZZY_CUTOFF = 0.9
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*(.*?)(?:```|$)", re.DOTALL)
_NON_ALNUM = re.compile(r"[^0-9a-z]")
_DIGITS = re.compile(r"\d+")
_UNSUPPORTED_KEY = "unsupportedmaterial"


def _key(text: str) -> str:
    """Case- and separator-insensitive comparison key: ``"Integer addition"`` -> ``integeraddition``."""
    return _NON_ALNUM.sub("", text.lower())


def empty_answer() -> dict[str, list[str]]:
    return {dimension: [] for dimension in DIMENSIONS}


@dataclass
class ParsedAnswer:
    answer: dict  # the upstream format, always valid
    raw: str  # the model's text as given
    parsed_ok: bool  # the raw text (stripped) is a JSON object as it stands
    repaired: bool  # extraction or lenient parsing was needed to get an object (or a bare refusal)
    unknown: list[str] = field(default_factory=list)  # labels dropped: not in the ontology
    remapped: dict[str, str] = field(default_factory=dict)  # model label -> ontology name (IRI, case, close match)
    moved: dict[str, str] = field(default_factory=dict)  # name -> "Scope->Area": filed under its own dimension
    ignored_keys: list[str] = field(default_factory=list)  # object keys that are no dimension (values still used)
    found_object: bool = False  # some JSON-like object was found at all

    @property
    def unsupported(self) -> bool:
        return self.answer == UNSUPPORTED_MATERIAL

    @property
    def labels(self) -> dict[str, list[str]]:
        """The labels per dimension (all empty for a refusal)."""
        return empty_answer() if self.unsupported else {d: list(self.answer[d]) for d in DIMENSIONS}

    @property
    def text(self) -> str:
        """The answer as the exact upstream string (`format_answer` / `format_unsupported`)."""
        return format_unsupported() if self.unsupported else format_answer(self.answer)

    @property
    def clean(self) -> bool:
        """The raw text was a valid answer as it stands: strict JSON, every label known and in its dimension."""
        return (
            self.parsed_ok
            and not self.repaired
            and not self.unknown
            and not self.remapped
            and not self.moved
            and not self.ignored_keys
        )

    def to_json(self) -> dict:
        return {**asdict(self), "unsupported": self.unsupported}


# ---------------------------------------------------------------------------------------------------------------
# Extraction and lenient parsing
# ---------------------------------------------------------------------------------------------------------------


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
                return {"_labels": items}, False, True
    return None, False, False


# ---------------------------------------------------------------------------------------------------------------
# Normalisation against the ontology
# ---------------------------------------------------------------------------------------------------------------


class LabelResolver:
    """Maps model labels to ontology concept names (exact, IRI, case/separators, unambiguous close match)."""

    def __init__(self, ontology: Ontology | None, fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF):
        self.ontology = ontology
        self.fuzzy_cutoff = fuzzy_cutoff
        self._by_key: dict[str, str] = {}
        if ontology is not None:
            for name in ontology.concepts:
                self._by_key.setdefault(_key(name), name)
        self._keys = list(self._by_key)
        self._cache: dict[str, str | None] = {}

    def dimension(self, name: str) -> str | None:
        if self.ontology is None:
            return None
        return self.ontology.concepts[name].dimension

    def resolve(self, label: str) -> str | None:
        if label not in self._cache:
            self._cache[label] = self._resolve(label)
        return self._cache[label]

    def _resolve(self, label: str) -> str | None:
        name = concept_name(label)
        for prefix in ("edu:", "edu#", "edu/"):
            if name.lower().startswith(prefix):
                name = name[len(prefix) :]
        name = name.strip().strip("<>").strip()
        if self.ontology is None:
            return name or None
        if name in self.ontology.concepts:
            return name
        key = _key(name)
        if not key:
            return None
        if key in self._by_key:
            return self._by_key[key]
        if self.fuzzy_cutoff is None:
            return None
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(key)
        scored = []
        for other in self._keys:
            if abs(len(other) - len(key)) > max(2, len(key) // 4):
                continue
            matcher.set_seq1(other)
            floor = self.fuzzy_cutoff - 0.02  # keep near-misses to detect ambiguity
            if matcher.real_quick_ratio() >= floor and matcher.quick_ratio() >= floor:
                scored.append((matcher.ratio(), other))
        scored.sort(reverse=True)
        if not scored or scored[0][0] < self.fuzzy_cutoff:
            return None
        best_ratio, best = scored[0]
        if len(scored) > 1 and scored[1][0] >= best_ratio - 0.02:
            return None  # ambiguous
        if _DIGITS.findall(best) != _DIGITS.findall(key):
            return None  # numbers carry meaning (NumbersSmaller10 vs NumbersSmaller100)
        return self._by_key[best]


def _flatten(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict):
        # {"Addition": true} or nested dimension objects: take keys and values that are strings
        out: list[Any] = []
        for key, inner in value.items():
            out.append(key)
            if not isinstance(inner, bool):
                out.extend(_flatten(inner))
        return out
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            out.extend(_flatten(item))
        return out
    if isinstance(value, str):
        parts = [part.strip() for part in re.split(r"[,;|]", value)]
        return [part for part in parts if part]
    return [value]


def _is_refusal_value(value: Any) -> bool:
    return any(isinstance(v, str) and _key(v) == _UNSUPPORTED_KEY for v in _flatten(value))


def normalise_object(obj: dict, resolver: LabelResolver, result: ParsedAnswer) -> None:
    """Fill `result.answer` (and the reports) from a parsed object."""
    dim_by_key = {_key(d): d for d in DIMENSIONS}
    for key, value in obj.items():
        k = _key(str(key))
        if k in ("error", "errors") and _is_refusal_value(value):
            result.answer = dict(UNSUPPORTED_MATERIAL)
            return
        if k == _UNSUPPORTED_KEY:
            result.answer = dict(UNSUPPORTED_MATERIAL)
            return
    grouped: dict[str, set[str]] = {d: set() for d in DIMENSIONS}
    for key, value in obj.items():
        given_dim = dim_by_key.get(_key(str(key)))
        if given_dim is None and key != "_labels":
            result.ignored_keys.append(str(key))
        for label in _flatten(value):
            if not isinstance(label, str):
                result.unknown.append(json.dumps(label))
                continue
            if given_dim is None and _key(label) == _UNSUPPORTED_KEY:
                continue
            name = resolver.resolve(label)
            if name is None:
                if label.strip():
                    result.unknown.append(label)
                continue
            if name != label:
                result.remapped[label] = name
            dimension = resolver.dimension(name) or given_dim
            if dimension is None:  # no ontology and no dimension key: nowhere to file it
                result.unknown.append(label)
                continue
            if given_dim is not None and dimension != given_dim:
                result.moved[name] = f"{given_dim}->{dimension}"
            grouped[dimension].add(name)
    result.answer = {d: sorted(grouped[d]) for d in DIMENSIONS}


def parse_answer(
    raw: str,
    ontology: Ontology | None,
    fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF,
    resolver: LabelResolver | None = None,
) -> ParsedAnswer:
    """Parse and repair one model answer (see the module docstring). Never raises."""
    raw = raw if isinstance(raw, str) else str(raw)
    resolver = resolver or LabelResolver(ontology, fuzzy_cutoff)
    obj, parsed_ok, repaired = extract_object(raw)
    result = ParsedAnswer(answer=empty_answer(), raw=raw, parsed_ok=parsed_ok, repaired=repaired)
    if obj is None:
        if _UNSUPPORTED_KEY in _key(raw):
            result.answer = dict(UNSUPPORTED_MATERIAL)
            result.repaired = True
        return result
    result.found_object = True
    normalise_object(obj, resolver, result)
    # keep reports free of duplicates, in first-seen order
    result.unknown = list(dict.fromkeys(result.unknown))
    return result


def parse_expected(text: str) -> dict:
    """An expected answer (dataset ``labels``) as a dict; strict: the dataset holds exact upstream strings."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected answer is not a JSON object: {text!r}")
    if value == UNSUPPORTED_MATERIAL:
        return dict(UNSUPPORTED_MATERIAL)
    unknown = set(value) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"expected answer has unknown key(s) {sorted(unknown)}: {text!r}")
    return {d: sorted(set(value.get(d, []))) for d in DIMENSIONS}
