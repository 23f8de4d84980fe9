"""The two answer contracts: rendering a classify answer in either, the closed schemas, and which schema asks for
which contract (or why the classifier cannot satisfy it)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from edugraph_pipeline.inference.contracts import (
    SchemaRefused,
    closed_schema,
    format_of_schema,
    render_answer,
    render_text,
)
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline_tests.conftest import skip_or_fail
from edugraph_pipeline_tests.kit.remotes import SHARED_DIR

UPSTREAM_SCHEMA = SHARED_DIR / "upstream" / "schemas" / "dimension-labels-v1.json"
ANSWER = {"Area": ["IntegerAddition", "Addition"], "Scope": ["NumbersSmaller10"], "Ability": []}


def test_both_contracts_carry_the_same_labels(ontology):
    assert render_answer(ANSWER, "legacy") == {**ANSWER, "Area": ["Addition", "IntegerAddition"]}
    assert render_answer(ANSWER, "v3") == {"areas": ["Addition", "IntegerAddition"], "scopes": ["NumbersSmaller10"],
                                           "abilities": []}
    assert list(json.loads(render_text(ANSWER, "v3"))) == ["areas", "scopes", "abilities"]
    # v3 has no Error key: unsupported material lists nothing
    assert render_answer(UNSUPPORTED_MATERIAL, "v3") == {"areas": [], "scopes": [], "abilities": []}
    assert render_text(UNSUPPORTED_MATERIAL, "legacy") == '{"Error": "UnsupportedMaterial"}'
    with pytest.raises(ValueError, match="unknown answer format"):
        render_answer(ANSWER, "v2")


@pytest.mark.parametrize("contract", ["v3", "legacy"])
def test_closed_schemas_admit_every_answer_and_name_their_contract(ontology, contract):
    schema = closed_schema(ontology, contract)
    assert format_of_schema(schema, ontology) == contract
    jsonschema.Draft202012Validator.check_schema(schema)
    answer = {"Area": ["Addition"], "Scope": [], "Ability": ["ErrorDetection", "ProcedureExecution"]}
    jsonschema.validate(render_answer(answer, contract), schema)
    jsonschema.validate(render_answer(UNSUPPORTED_MATERIAL, contract), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(render_answer({"Area": ["Coins"], "Scope": [], "Ability": []}, contract), schema)


def test_upstream_s_open_schema_asks_for_v3(ontology):
    if not UPSTREAM_SCHEMA.is_file():
        skip_or_fail(f"reference data {UPSTREAM_SCHEMA} is absent (see ../shared/README.md)")
    assert format_of_schema(json.loads(UPSTREAM_SCHEMA.read_text(encoding="utf-8")), ontology) == "v3"


def test_schemas_that_name_no_contract_leave_the_choice_to_the_server(ontology):
    assert format_of_schema({}, ontology) is None
    assert format_of_schema({"type": "object", "title": "anything"}, ontology) is None
    open_legacy = {"type": "object", "properties": {"Area": {"type": "array"}, "Scope": {}, "Ability": {}}}
    assert format_of_schema(open_legacy, ontology) == "legacy"  # no required keys: the refusal fits it too
    with_error = {**open_legacy, "required": ["Area"], "properties": {**open_legacy["properties"],
                                                                      "Error": {"const": "UnsupportedMaterial"}}}
    assert format_of_schema(with_error, ontology) == "legacy"


@pytest.mark.parametrize("schema, reason", [
    ({"type": "array"}, "answers are JSON objects"),
    ({"type": "object", "properties": {"areas": {"type": "array", "minItems": 1}}}, "minItems"),
    ({"type": "object", "properties": {"areas": {"type": "array", "maxItems": 1}}}, "maxItems: 1 is fewer than"),
    ({"type": "object", "properties": {"areas": {"type": "array", "items": {"type": "integer"}}}}, "labels are strings"),
    ({"type": "object", "properties": {"areas": {"items": {"pattern": "^A"}}}}, "pattern"),
    ({"type": "object", "properties": {"areas": {}, "Scope": {}}}, "keys of both contracts"),
    ({"type": "object", "properties": {"labels": {}}}, "labels that no answer has"),
    ({"type": "object", "properties": {"areas": {}}, "required": ["areas", "topics"]}, "topics is no key"),
    ({"type": "object", "required": ["Area"]}, "without naming the answer's keys"),
    ({"type": "object", "properties": {"areas": {"items": {"enum": ["Addition"]}}}}, "leaves out 2 eligible Area"),
    ({"type": "object", "properties": {"Area": {}, "Scope": {}, "Ability": {}}, "additionalProperties": False},
     "UnsupportedMaterial"),
    ({"anyOf": [{"type": "object", "properties": {"areas": {}}},
                {"type": "object", "properties": {"Error": {"const": "UnsupportedMaterial"}}}]}, "no Error answer"),
    ({"anyOf": [{"type": "object", "properties": {"Area": {}}, "required": ["Area"]},
                {"type": "object", "properties": {"Error": {"const": "NotMath"}}}]}, "does not admit"),
    ({"oneOf": []}, "non-empty list"),
    ("not a schema", "a JSON schema is an object"),
])
def test_schemas_the_classifier_cannot_satisfy_are_refused_naming_why(ontology, schema, reason):
    with pytest.raises(SchemaRefused, match=reason):
        format_of_schema(schema, ontology)


def test_a_legacy_schema_with_the_refusal_as_alternative(ontology):
    labels = closed_schema(ontology, "legacy")["anyOf"][0]
    refusal = {"type": "object", "properties": {"Error": {"type": "string", "enum": ["UnsupportedMaterial"]}},
               "required": ["Error"]}
    assert format_of_schema({"oneOf": [refusal, labels]}, ontology) == "legacy"
    with pytest.raises(SchemaRefused, match="UnsupportedMaterial"):
        format_of_schema(labels, ontology)  # the strict labels object alone refuses the refusal


def test_answer_problems_name_what_breaks_the_contract(ontology):
    from edugraph_pipeline.inference.contracts import answer_problems

    def kinds(text, contract="v3"):
        return [kind for kind, _ in answer_problems(text, ontology, contract)]

    assert kinds(render_text(ANSWER, "v3")) == [] and kinds(render_text(ANSWER, "legacy"), "legacy") == []
    assert kinds('{"Error": "UnsupportedMaterial"}', "legacy") == []
    assert kinds('{"Error": "UnsupportedMaterial"}') == ["keys"]
    assert kinds("Addition") == ["json"] and kinds("[]") == ["json"]
    assert kinds('{"areas": ["Addition", "Addition"], "scopes": [], "abilities": []}') == ["repeat"]
    assert kinds('{"areas": ["Subtraction", "Addition"], "scopes": [], "abilities": []}') == ["order"]
    assert kinds('{"areas": ["Coins"], "scopes": "Coins", "abilities": []}') == ["label", "type"]
    assert kinds('{"areas": [], "scopes": [], "abilities": [], "extra": []}') == ["keys"]
