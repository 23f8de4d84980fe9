"""The two answer contracts a served answer takes, and the JSON schemas that ask for them.

* ``legacy`` (the seed's, upstream's Qwen3-VL 4B deployment's; what the model is trained on):
  ``{"Area": [...], "Scope": [...], "Ability": [...]}`` or ``{"Error": "UnsupportedMaterial"}``.
* ``v3`` (upstream's ``dimension-labels-v1.json``): exactly ``areas``, ``scopes``, ``abilities``, each a sorted
  list of unique names, possibly empty, no other key. It has no ``Error`` key: unsupported material answers three
  empty lists (upstream's v3 prompt asks for ``[]`` where nothing applies).

`render_answer` turns a classify answer (always a valid legacy answer of the bound release) into either, so both
contracts carry the same labels. `closed_schema` is the closed-vocabulary schema of a release (every list's
``enum`` is the release's eligible labels of that dimension). `format_of_schema` reads a client's schema (an
OpenAI ``response_format``): which contract it asks for, or `SchemaRefused` naming why the classifier cannot
satisfy it (a key of neither contract, a vocabulary of another release, a bound answers could exceed, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edugraph_pipeline.inference.constraint import answer_labels
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology
from edugraph_pipeline.prompts import ANSWER_FORMATS, LEGACY, V3

V3_KEYS: dict[str, str] = {"Area": "areas", "Scope": "scopes", "Ability": "abilities"}
ERROR_KEY = "Error"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Keywords that only describe (they constrain nothing the classifier could violate).
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples", "default"})
_OBJECT_KEYWORDS = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties", "anyOf", "oneOf"}
_LIST_KEYWORDS = _ANNOTATIONS | {"type", "items", "uniqueItems", "minItems", "maxItems"}
_ITEM_KEYWORDS = _ANNOTATIONS | {"type", "enum"}


class SchemaRefused(ValueError):
    """A response schema the classifier cannot satisfy; the message says why (and where, as a JSON path)."""


def check_format(answer_format: str) -> str:
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r}: one of {', '.join(ANSWER_FORMATS)}")
    return answer_format


def render_answer(answer: Mapping[str, Any], answer_format: str) -> dict:
    """A classify answer (legacy, valid) in `answer_format`: itself, or its labels under the v3 keys."""
    check_format(answer_format)
    if dict(answer) == UNSUPPORTED_MATERIAL:
        return dict(UNSUPPORTED_MATERIAL) if answer_format == LEGACY else {V3_KEYS[d]: [] for d in DIMENSIONS}
    keys = V3_KEYS if answer_format == V3 else {dimension: dimension for dimension in DIMENSIONS}
    return {keys[dimension]: sorted(set(answer.get(dimension, ()))) for dimension in DIMENSIONS}


def render_text(answer: Mapping[str, Any], answer_format: str) -> str:
    """The answer as JSON text, spaced as `labels.format_answer` writes legacy answers."""
    return json.dumps(render_answer(answer, answer_format), ensure_ascii=False)


def _label_list(names: list[str]) -> dict:
    # maxItems is implied by uniqueItems over the enum; stated, it bounds a grammar built from the schema
    # (llama.cpp's ignores uniqueItems and would let a list run on until max_tokens).
    return {"type": "array", "items": {"type": "string", "enum": names}, "uniqueItems": True, "maxItems": len(names)}


def closed_schema(ontology: Ontology, answer_format: str) -> dict:
    """The schema of every answer the classifier bound to `ontology` can give in `answer_format`."""
    check_format(answer_format)
    title = f"EduGraph labels, closed vocabulary of ontology release {ontology.version}"
    if answer_format == V3:
        keys = [V3_KEYS[dimension] for dimension in DIMENSIONS]
        return {
            "$schema": SCHEMA_DIALECT, "title": title, "type": "object", "additionalProperties": False,
            "required": keys,
            "properties": {V3_KEYS[d]: _label_list(answer_labels(ontology, d)) for d in DIMENSIONS},
        }
    labels = {
        "type": "object", "additionalProperties": False, "required": list(DIMENSIONS),
        "properties": {d: _label_list(answer_labels(ontology, d)) for d in DIMENSIONS},
    }
    refusal = {
        "type": "object", "additionalProperties": False, "required": [ERROR_KEY],
        "properties": {ERROR_KEY: {"type": "string", "enum": [UNSUPPORTED_MATERIAL[ERROR_KEY]]}},
    }
    return {"$schema": SCHEMA_DIALECT, "title": title, "anyOf": [labels, refusal]}


# ---- reading a client's schema ----------------------------------------------------------------------------------


def format_of_schema(schema: Any, ontology: Ontology, path: str = "schema") -> str | None:
    """The contract `schema` asks for (`legacy`, `v3`), None for a schema that names neither (any JSON object),
    or `SchemaRefused` when some answer the classifier can give would violate it."""
    if not isinstance(schema, dict):
        raise SchemaRefused(f"{path}: a JSON schema is an object, got {type(schema).__name__}")
    _only(schema, _OBJECT_KEYWORDS, path)
    _object_type(schema, path)
    if "anyOf" in schema or "oneOf" in schema:
        return _format_of_alternatives(schema, ontology, path)
    return _format_of_object(schema, ontology, path, refusal_elsewhere=False)


def _format_of_object(schema: dict, ontology: Ontology, path: str, refusal_elsewhere: bool) -> str | None:
    properties = schema.get("properties")
    if properties is None:
        if schema.get("required") or schema.get("additionalProperties") is False:
            raise SchemaRefused(f"{path}: requires or forbids keys without naming the answer's keys")
        return None
    if not isinstance(properties, dict):
        raise SchemaRefused(f"{path}.properties: expected an object")
    keys = set(properties)
    if keys and keys <= set(V3_KEYS.values()):
        by_key = {value: key for key, value in V3_KEYS.items()}
        for key, value in properties.items():
            _check_label_list(value, ontology, by_key[key], f"{path}.properties.{key}")
        _check_required(schema, keys, path)
        return V3
    if keys and keys <= set(DIMENSIONS) | {ERROR_KEY}:
        for key, value in properties.items():
            if key == ERROR_KEY:
                _check_refusal_value(value, f"{path}.properties.{key}")
            else:
                _check_label_list(value, ontology, key, f"{path}.properties.{key}")
        _check_required(schema, keys - {ERROR_KEY}, path)
        refuses_refusal = bool(schema.get("required")) or schema.get("additionalProperties") is False
        if ERROR_KEY not in keys and refuses_refusal and not refusal_elsewhere:
            raise SchemaRefused(
                f'{path}: the legacy contract answers {{"Error": "UnsupportedMaterial"}} for material that is not K-4 '
                "math, which this schema refuses: add it as an alternative (anyOf) or ask for the v3 keys "
                "(areas, scopes, abilities)"
            )
        return LEGACY
    legacy = sorted(keys & (set(DIMENSIONS) | {ERROR_KEY}))
    v3 = sorted(keys & set(V3_KEYS.values()))
    other = sorted(keys - set(DIMENSIONS) - {ERROR_KEY} - set(V3_KEYS.values()))
    reason = (
        f"keys of both contracts ({', '.join(legacy)} and {', '.join(v3)})" if legacy and v3
        else f"key(s) {', '.join(other)} that no answer has" if other else "no keys"
    )
    raise SchemaRefused(
        f"{path}.properties: {reason}; answers carry either areas/scopes/abilities (v3) or Area/Scope/Ability "
        "(legacy)"
    )


def _is_refusal_branch(branch: Any) -> bool:
    return isinstance(branch, dict) and set(branch.get("properties") or {}) == {ERROR_KEY}


def _format_of_alternatives(schema: dict, ontology: Ontology, path: str) -> str:
    """``anyOf``/``oneOf``: one alternative for the labels, and (legacy only) one for the refusal."""
    keyword = "anyOf" if "anyOf" in schema else "oneOf"
    branches = schema[keyword]
    if "properties" in schema or not isinstance(branches, list) or not branches:
        raise SchemaRefused(f"{path}.{keyword}: expected a non-empty list of object schemas and no properties beside")
    refusals = [index for index, branch in enumerate(branches) if _is_refusal_branch(branch)]
    labels = [index for index in range(len(branches)) if index not in refusals]
    if len(labels) != 1 or len(refusals) > 1:
        raise SchemaRefused(f"{path}.{keyword}: expected one alternative for the labels and at most one for the refusal")
    for index in refusals:
        where = f"{path}.{keyword}[{index}]"
        _only(branches[index], _OBJECT_KEYWORDS - {"anyOf", "oneOf"}, where)
        _object_type(branches[index], where)
        _check_refusal_value(branches[index]["properties"][ERROR_KEY], f"{where}.properties.{ERROR_KEY}")
    where = f"{path}.{keyword}[{labels[0]}]"
    branch = branches[labels[0]]
    if not isinstance(branch, dict):
        raise SchemaRefused(f"{where}: expected a schema object")
    _only(branch, _OBJECT_KEYWORDS - {"anyOf", "oneOf"}, where)
    _object_type(branch, where)
    found = _format_of_object(branch, ontology, where, refusal_elsewhere=bool(refusals))
    if found is None:
        raise SchemaRefused(f"{where}: names no answer keys")
    if found == V3 and refusals:
        raise SchemaRefused(f"{path}.{keyword}: the v3 contract has no Error answer; drop that alternative")
    return found


def _only(schema: dict, allowed: frozenset, path: str) -> None:
    unknown = sorted(set(schema) - allowed)
    if unknown:
        raise SchemaRefused(
            f"{path}: keyword(s) {', '.join(unknown)} the classifier cannot check its answers against "
            f"(understood: {', '.join(sorted(allowed - _ANNOTATIONS))})"
        )


def _object_type(schema: dict, path: str) -> None:
    if schema.get("type", "object") != "object":
        raise SchemaRefused(f"{path}.type: answers are JSON objects, not {schema['type']!r}")


def _check_required(schema: dict, keys: set[str], path: str) -> None:
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(key, str) for key in required):
        raise SchemaRefused(f"{path}.required: expected a list of key names")
    missing = sorted(set(required) - keys)
    if missing:
        raise SchemaRefused(f"{path}.required: {', '.join(missing)} is no key of the answer")


def _check_refusal_value(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise SchemaRefused(f"{path}: expected a schema object")
    _only(value, _ITEM_KEYWORDS | {"const"}, path)
    if value.get("type", "string") != "string":
        raise SchemaRefused(f"{path}.type: the refusal is the string {UNSUPPORTED_MATERIAL[ERROR_KEY]!r}")
    allowed = [value["const"]] if "const" in value else value.get("enum")
    if allowed is not None and UNSUPPORTED_MATERIAL[ERROR_KEY] not in allowed:
        raise SchemaRefused(f"{path}: does not admit {UNSUPPORTED_MATERIAL[ERROR_KEY]!r}, the only refusal")


def _check_label_list(value: Any, ontology: Ontology, dimension: str, path: str) -> None:
    if not isinstance(value, dict):
        raise SchemaRefused(f"{path}: expected a schema object")
    _only(value, _LIST_KEYWORDS, path)
    if value.get("type", "array") != "array":
        raise SchemaRefused(f"{path}.type: labels are a list (array), not {value['type']!r}")
    if value.get("minItems", 0) > 0:
        raise SchemaRefused(f"{path}.minItems: answers may list no {dimension} label (nothing applies)")
    vocabulary = answer_labels(ontology, dimension)
    items = value.get("items", {})
    if not isinstance(items, dict):
        raise SchemaRefused(f"{path}.items: expected a schema object")
    _only(items, _ITEM_KEYWORDS, f"{path}.items")
    if items.get("type", "string") != "string":
        raise SchemaRefused(f"{path}.items.type: labels are strings, not {items['type']!r}")
    if "enum" in items:
        _check_vocabulary(items["enum"], vocabulary, ontology, dimension, f"{path}.items.enum")
    if "maxItems" in value and value["maxItems"] < len(vocabulary):
        raise SchemaRefused(
            f"{path}.maxItems: {value['maxItems']} is fewer than the {len(vocabulary)} {dimension} labels an answer "
            "may list; the classifier does not cut answers short"
        )


def _check_vocabulary(enum: Any, vocabulary: list[str], ontology: Ontology, dimension: str, path: str) -> None:
    if not isinstance(enum, list) or not all(isinstance(name, str) for name in enum):
        raise SchemaRefused(f"{path}: expected a list of label names")
    given, allowed = set(enum), set(vocabulary)
    release = f"ontology release {ontology.version} (the model's)"
    foreign = sorted(given - allowed)
    if foreign:
        described = []
        for name in foreign[:8]:
            concept = ontology.concepts.get(name)
            if concept is None:
                described.append(f"{name} (not a concept)")
            elif concept.dimension != dimension:
                described.append(f"{name} (dimension {concept.dimension})")
            else:
                described.append(f"{name} (organizational: not a valid direct label)")
        more = f" and {len(foreign) - 8} more" if len(foreign) > 8 else ""
        raise SchemaRefused(
            f"{path}: {len(foreign)} name(s) that are no eligible {dimension} label of {release}: "
            f"{', '.join(described)}{more}; is the schema built for another release?"
        )
    missing = sorted(allowed - given)
    if missing:
        raise SchemaRefused(
            f"{path}: leaves out {len(missing)} eligible {dimension} label(s) of {release} that the classifier "
            f"may answer (e.g. {', '.join(missing[:5])}); use that release's closed vocabulary"
        )


# ---- checking an answer text -----------------------------------------------------------------------------------

FORM_PROBLEMS = ("order", "repeat")  # what a grammar from the schema does not enforce (llama.cpp's ignores both)


def answer_problems(text: str, ontology: Ontology, answer_format: str) -> list[tuple[str, str]]:
    """Why `text` is not a valid answer of `answer_format` for `ontology`, as ``(kind, message)`` pairs (none:
    valid): JSON, exactly the contract's keys, lists of names, sorted and unique, each an eligible label of its
    dimension in this release, and together compatible. Kinds: json, keys, type, order, repeat, label, conflict."""
    check_format(answer_format)
    try:
        answer = json.loads(text)
    except ValueError as error:
        return [("json", f"not JSON ({error})")]
    if not isinstance(answer, dict):
        return [("json", "not a JSON object")]
    if answer_format == LEGACY and answer == UNSUPPORTED_MATERIAL:
        return []
    keys = {dimension: V3_KEYS[dimension] if answer_format == V3 else dimension for dimension in DIMENSIONS}
    if set(answer) != set(keys.values()):
        return [("keys", f"keys {sorted(answer)}, expected {list(keys.values())}")]
    problems: list[tuple[str, str]] = []
    labels: list[str] = []
    for dimension, key in keys.items():
        names = answer[key]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            problems.append(("type", f"{key}: not a list of names"))
            continue
        if len(set(names)) != len(names):
            problems.append(("repeat", f"{key}: repeats {sorted({n for n in names if names.count(n) > 1})}"))
        elif names != sorted(names):
            problems.append(("order", f"{key}: not sorted"))
        allowed = set(answer_labels(ontology, dimension))
        wrong = sorted(set(names) - allowed)
        if wrong:
            problems.append(("label", f"{key}: {wrong} are no eligible {dimension} labels of {ontology.version}"))
        labels.extend(name for name in dict.fromkeys(names) if name in allowed)
    conflicts = ontology.incompatible_pairs(labels)
    if conflicts:
        problems.append(("conflict", "; ".join(pair.reason for pair in conflicts)))
    return problems
