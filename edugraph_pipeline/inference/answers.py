"""Model text -> a guaranteed-valid answer in the upstream format, with a record of every repair.

`parse_answer(raw, ontology)` never raises. It

1. extracts the first JSON object of the text (`lenient_json`: strictly if it can, else leniently);
2. recognises the refusal ``{"Error": "UnsupportedMaterial"}`` (also as bare text when no object is found);
3. normalises every label to a concept name of the bound ontology (`label_resolver`: IRIs, case and separators,
   optionally one unambiguous close match);
4. files every concept under the dimension the ontology gives it (moves are reported) and drops unknown names;
5. drops labels that are not eligible in the bound release (organizational descriptors: `Ontology.is_eligible`;
   every label of a release without composition apart from specialization is eligible);
6. resolves logical conflicts (`Ontology.incompatible_pairs`: anything one label implies, or itself, contradicts
   anything the other implies, or itself): going through the labels in the order the model gave them, a label
   incompatible with one kept before it (or with itself) is dropped, so the earlier label wins (greedy decoding
   has no scores to rank them by). Each drop is recorded with its reason.

The result's `answer` is always ``{"Area": [...], "Scope": [...], "Ability": [...]}`` with sorted, unique,
eligible and mutually compatible names of the bound release (possibly empty lists), or exactly
``{"Error": "UnsupportedMaterial"}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edugraph_pipeline.inference.label_resolver import DEFAULT_FUZZY_CUTOFF, LabelResolver, comparison_key
from edugraph_pipeline.inference.lenient_json import BARE_LIST_KEY, extract_object
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL, format_answer, format_unsupported
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology

_UNSUPPORTED_KEY = "unsupportedmaterial"


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
    ineligible: list[str] = field(default_factory=list)  # organizational labels of the bound release, dropped
    incompatible: dict[str, str] = field(default_factory=dict)  # label dropped -> why it conflicts with a kept one

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
            and not self.ineligible
            and not self.incompatible
        )

    def to_json(self) -> dict:
        return {**asdict(self), "unsupported": self.unsupported}



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
    return any(isinstance(v, str) and comparison_key(v) == _UNSUPPORTED_KEY for v in _flatten(value))


def normalise_object(obj: dict, resolver: LabelResolver, result: ParsedAnswer) -> None:
    """Fill `result.answer` (and the reports) from a parsed object."""
    dim_by_key = {comparison_key(d): d for d in DIMENSIONS}
    for key, value in obj.items():
        k = comparison_key(str(key))
        if k in ("error", "errors") and _is_refusal_value(value):
            result.answer = dict(UNSUPPORTED_MATERIAL)
            return
        if k == _UNSUPPORTED_KEY:
            result.answer = dict(UNSUPPORTED_MATERIAL)
            return
    grouped: dict[str, set[str]] = {d: set() for d in DIMENSIONS}
    order: list[str] = []  # labels as the model gave them, first occurrence
    for key, value in obj.items():
        given_dim = dim_by_key.get(comparison_key(str(key)))
        if given_dim is None and key != BARE_LIST_KEY:
            result.ignored_keys.append(str(key))
        for label in _flatten(value):
            if not isinstance(label, str):
                result.unknown.append(json.dumps(label))
                continue
            if given_dim is None and comparison_key(label) == _UNSUPPORTED_KEY:
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
            if resolver.ontology is not None and not resolver.ontology.is_eligible(name):
                result.ineligible.append(name)
                continue
            grouped[dimension].add(name)
            if name not in order:
                order.append(name)
    if resolver.ontology is not None:
        result.incompatible = drop_incompatible(order, resolver.ontology)
        for name in result.incompatible:
            grouped[resolver.dimension(name)].discard(name)
    result.answer = {d: sorted(grouped[d]) for d in DIMENSIONS}


def drop_incompatible(order: list[str], ontology: Ontology) -> dict[str, str]:
    """The labels of `order` to drop so that the rest can apply together: each label incompatible with one kept
    before it (or with itself), mapped to the reason."""
    kept: list[str] = []
    dropped: dict[str, str] = {}
    for name in order:
        partners = set(ontology.incompatible_with(name))
        other = next((earlier for earlier in kept if earlier in partners), None)
        if other is not None:
            pair = next(p for p in ontology.incompatible_pairs([other, name]) if {p.first, p.second} == {other, name})
            dropped[name] = f"incompatible with {other}: {pair.reason}"
            continue
        itself = ontology.incompatible_pairs([name])
        if itself:
            dropped[name] = f"contradicts itself: {itself[0].reason}"
            continue
        kept.append(name)
    return dropped


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
        if _UNSUPPORTED_KEY in comparison_key(raw):
            result.answer = dict(UNSUPPORTED_MATERIAL)
            result.repaired = True
        return result
    result.found_object = True
    normalise_object(obj, resolver, result)
    # keep reports free of duplicates, in first-seen order
    result.unknown = list(dict.fromkeys(result.unknown))
    result.ineligible = list(dict.fromkeys(result.ineligible))
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
