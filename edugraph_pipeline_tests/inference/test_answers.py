"""parse_answer: strict answers, repair of damaged JSON, normalisation against the ontology, refusals."""

from __future__ import annotations

import json

import pytest

from edugraph_pipeline.inference.answers import parse_answer, parse_expected
from edugraph_pipeline.inference.label_resolver import LabelResolver
from edugraph_pipeline.inference.lenient_json import extract_object
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.ontology.model import DIMENSIONS
from edugraph_pipeline_tests.conftest import load_shared_release, requires_shared
from edugraph_pipeline_tests.evaluation.helpers import UNSUPPORTED, answer


def test_clean_answer_passes_untouched(ontology):
    raw = answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"])
    result = parse_answer(raw, ontology)
    assert result.answer == json.loads(raw)
    assert result.parsed_ok and not result.repaired and result.clean
    assert (result.unknown, result.remapped, result.moved) == ([], {}, {})
    assert result.text == raw


def test_refusal_is_recognised(ontology):
    result = parse_answer(UNSUPPORTED, ontology)
    assert result.unsupported and result.parsed_ok and result.answer == UNSUPPORTED_MATERIAL
    assert result.labels == {d: [] for d in DIMENSIONS}
    assert result.text == UNSUPPORTED


@pytest.mark.parametrize(
    "raw",
    [
        'Here you go: {"Error": "UnsupportedMaterial"} hope that helps',
        "{'error': 'unsupported material'}",
        "UnsupportedMaterial",
    ],
)
def test_refusal_variants(ontology, raw):
    result = parse_answer(raw, ontology)
    assert result.unsupported
    assert not result.parsed_ok and result.repaired


def test_truncated_refusal_is_no_refusal(ontology):
    # nothing known survives: the answer is empty but valid
    assert parse_answer('{"Error": "UnsupportedMat', ontology).answer == {d: [] for d in DIMENSIONS}


def test_surrounding_text_and_code_fence(ontology):
    raw = 'Sure!\n```json\n{"Area": ["Addition"], "Scope": ["Coins"], "Ability": []}\n```\nDone.'
    result = parse_answer(raw, ontology)
    assert result.answer == {"Area": ["Addition"], "Scope": ["Coins"], "Ability": []}
    assert not result.parsed_ok and result.repaired
    assert result.raw == raw


def test_prose_braces_before_the_object_are_skipped(ontology):
    raw = 'I think {this} is it: {"Area": ["Subtraction"], "Scope": [], "Ability": []}'
    assert parse_answer(raw, ontology).answer["Area"] == ["Subtraction"]


def test_single_quotes_trailing_commas_and_truncation(ontology):
    raw = "{'Area': ['Addition', 'Subtraction',], 'Scope': ['NumbersSmaller10',], 'Ability': ['ErrorDet"
    result = parse_answer(raw, ontology)
    assert result.answer == {"Area": ["Addition", "Subtraction"], "Scope": ["NumbersSmaller10"], "Ability": []}
    assert result.repaired and not result.parsed_ok
    assert result.unknown == ["ErrorDet"]  # a truncated name is dropped, not guessed


def test_truncated_after_a_complete_name_keeps_it(ontology):
    result = parse_answer('{"Area": ["Addition"], "Scope": ["Coins"], "Ability": ["ErrorDetection"', ontology)
    assert result.answer == {"Area": ["Addition"], "Scope": ["Coins"], "Ability": ["ErrorDetection"]}


def test_missing_commas_bare_words_and_python_literals(ontology):
    raw = '{Area: ["Addition" "Subtraction"] Scope: [Coins], Ability: None}'
    result = parse_answer(raw, ontology)
    assert result.answer == {"Area": ["Addition", "Subtraction"], "Scope": ["Coins"], "Ability": []}


def test_case_iri_and_separator_normalisation_is_reported(ontology):
    raw = json.dumps(
        {
            "area": ["addition", "http://edugraph.io/edu/Subtraction", "Integer addition"],
            "SCOPE": ["edu:Coins"],
            "Ability": ["procedure_execution"],
        }
    )
    result = parse_answer(raw, ontology)
    assert result.answer == {
        "Area": ["Addition", "IntegerAddition", "Subtraction"],
        "Scope": ["Coins"],
        "Ability": ["ProcedureExecution"],
    }
    assert result.parsed_ok and not result.repaired and not result.clean
    assert result.remapped == {
        "addition": "Addition",
        "http://edugraph.io/edu/Subtraction": "Subtraction",
        "Integer addition": "IntegerAddition",
        "edu:Coins": "Coins",
        "procedure_execution": "ProcedureExecution",
    }


def test_close_match_maps_typos_but_never_changes_numbers(ontology):
    result = parse_answer(answer(["Substraction"], ["NumbersSmaller1000", "NumbersSmaler10"]), ontology)
    assert result.answer["Area"] == ["Subtraction"]
    assert result.answer["Scope"] == ["NumbersSmaller10"]
    assert result.remapped == {"Substraction": "Subtraction", "NumbersSmaler10": "NumbersSmaller10"}
    assert result.unknown == ["NumbersSmaller1000"]
    strict = parse_answer(answer(["Substraction"]), ontology, fuzzy_cutoff=None)
    assert strict.answer["Area"] == [] and strict.unknown == ["Substraction"]


def test_wrong_dimension_is_moved_and_reported(ontology):
    raw = answer(["Addition", "Coins"], ["ErrorDetection"], [])
    result = parse_answer(raw, ontology)
    assert result.answer == {"Area": ["Addition"], "Scope": ["Coins"], "Ability": ["ErrorDetection"]}
    assert result.moved == {"Coins": "Area->Scope", "ErrorDetection": "Scope->Ability"}
    assert result.parsed_ok and not result.clean


def test_unknown_names_keys_and_values_are_dropped(ontology):
    raw = '{"Area": ["Addition", "Calculus", 7, null], "Scope": "Coins, NumbersSmaller10", "Topic": ["Subtraction"]}'
    result = parse_answer(raw, ontology)
    assert result.answer == {"Area": ["Addition", "Subtraction"], "Scope": ["Coins", "NumbersSmaller10"], "Ability": []}
    assert result.unknown == ["Calculus", "7"]
    assert result.ignored_keys == ["Topic"]
    assert "Subtraction" not in result.moved  # no dimension was claimed for it


def test_duplicates_collapse_and_lists_are_sorted(ontology):
    result = parse_answer('{"Area": ["Subtraction", "Addition", "addition", "Addition"]}', ontology)
    assert result.answer["Area"] == ["Addition", "Subtraction"]
    assert result.answer["Scope"] == [] and result.answer["Ability"] == []


@pytest.mark.parametrize("raw", ["", "   ", "no json at all", "{", "}{", "[[[", "\x00\xff", '{"": ""}', "{{{{}}}}"])
def test_garbage_gives_an_empty_valid_answer(ontology, raw):
    result = parse_answer(raw, ontology)
    assert result.answer == {d: [] for d in DIMENSIONS}
    assert not result.parsed_ok or raw.strip().startswith("{")


def test_bare_list_of_labels_is_filed_by_the_ontology(ontology):
    result = parse_answer('Labels: ["Addition", "Coins", "ErrorDetection"]', ontology)
    assert result.answer == {"Area": ["Addition"], "Scope": ["Coins"], "Ability": ["ErrorDetection"]}


def test_non_string_input_never_raises(ontology):
    assert parse_answer(None, ontology).answer == {d: [] for d in DIMENSIONS}  # type: ignore[arg-type]


def test_extract_object_reports_strictness():
    assert extract_object('{"a": 1}') == ({"a": 1}, True, False)
    assert extract_object('x {"a": 1} y') == ({"a": 1}, False, True)
    assert extract_object('{"a": [1, 2') == ({"a": [1, 2]}, False, True)
    assert extract_object("nothing") == (None, False, False)


def test_resolver_without_ontology_keeps_names_by_key():
    result = parse_answer('{"Area": ["http://edugraph.io/edu#Addition"], "Scope": ["Anything"]}', None)
    assert result.answer == {"Area": ["Addition"], "Scope": ["Anything"], "Ability": []}
    assert LabelResolver(None).resolve("edu:Coins") == "Coins"


def test_parse_expected_is_strict():
    assert parse_expected(UNSUPPORTED) == UNSUPPORTED_MATERIAL
    assert parse_expected('{"Area": ["B", "A"]}') == {"Area": ["A", "B"], "Scope": [], "Ability": []}
    with pytest.raises(ValueError):
        parse_expected('{"Topic": []}')
    with pytest.raises(ValueError):
        parse_expected("[]")


@requires_shared
def test_real_release_normalisation():
    ontology = load_shared_release("v0.21.0")
    raw = "```json\n{'Area': ['integerAddition'], 'Scope': ['NumbersSmaller10', 'ProcedureExecution'],}\n```"
    result = parse_answer(raw, ontology)
    for dimension, names in result.answer.items():
        assert all(ontology.concepts[name].dimension == dimension for name in names)
    assert "ProcedureExecution" in result.answer["Ability"]
    assert result.moved["ProcedureExecution"] == "Scope->Ability"
