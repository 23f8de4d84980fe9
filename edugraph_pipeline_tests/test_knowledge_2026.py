"""Issue 22: the knowledge dataset of a release with specialization and composition apart (ontology-2026)."""

import json
from collections import Counter

import pytest

from edugraph_pipeline.knowledge.qa import LABEL_ANSWER_KINDS, count_by_kind, generate_pairs
from edugraph_pipeline.ontology.model import DIMENSIONS
from edugraph_pipeline_tests.ontology_2026 import load_ontology_2026


@pytest.fixture(scope="module")
def ontology_2026():
    return load_ontology_2026()


@pytest.fixture(scope="module")
def pairs(ontology_2026):
    return generate_pairs(ontology_2026)


def by(pairs, kind):
    return {pair.concept: pair for pair in pairs if pair.kind == kind}


def names(output: str) -> set[str]:
    return {name for dimension in DIMENSIONS for name in json.loads(output)[dimension]}


def test_rows_per_kind(pairs):
    assert count_by_kind(pairs) == {
        "definition_to_label": 764,
        "parent": 406,  # 408 specializes facts, two concepts with two parents
        "children": 119,
        "label_to_definition": 764,
        "dimension": 764,
        "ancestors": 102,
        "relation": 401,
        "top_level": 3,
        "part_of": 340,
        "parts": 86,
        "examples": 400,
        "eligibility": 764,
        "logic": 67,
        "incompatible": 40,
        "compatibility": 146,
    }
    assert len(pairs) == 5166
    assert max(Counter(pair.instruction for pair in pairs).values()) == 1


def test_taxonomy_questions_come_from_specialization(pairs, ontology_2026):
    parents = by(pairs, "parent")
    assert parents["Square"].instruction == "Which broader concepts is the concept 'Square' a kind of?"
    assert names(parents["Square"].output) == {"Rectangle"}
    assert names(by(pairs, "children")["Polygon"].output) == {"Hexagon", "Pentagon", "Quadrilateral", "Triangle"}
    assert names(by(pairs, "ancestors")["Square"].output) == {"Rectangle", "Parallelogram", "Quadrilateral", "Polygon"}
    # Circle is only part of CircularShapes: no taxonomy question for it.
    assert "Circle" not in parents
    assert all(names(pair.output) == set(ontology_2026.concepts[name].parents) for name, pair in parents.items())


def test_composition_questions_say_part_of_and_never_kind_of(pairs, ontology_2026):
    part_of, parts = by(pairs, "part_of"), by(pairs, "parts")
    assert part_of["Circle"].instruction == "Which concepts is the concept 'Circle' part of?"
    assert names(part_of["Circle"].output) == {"CircularShapes"}
    assert parts["CircularShapes"].instruction == "Which concepts are parts of the concept 'CircularShapes'?"
    assert names(parts["CircularShapes"].output) == {"Circle", "HalfCircle", "QuarterCircle"}
    composition = list(part_of.values()) + list(parts.values())
    assert len(composition) == 340 + 86
    for pair in composition:
        assert "part" in pair.instruction and not any(
            word in pair.instruction for word in ("kind", "parent", "child", "contain", "speciali")
        ), pair
    assert sum(len(names(pair.output)) for pair in part_of.values()) == 340  # every partOf fact once
    # ...and no taxonomy question carries a composition fact.
    taxonomy = [pair for pair in pairs if pair.kind in ("parent", "children", "ancestors")]
    assert all("kind" in pair.instruction for pair in taxonomy)
    assert not any("CircularShapes" in names(pair.output) for pair in taxonomy if pair.concept == "Circle")


def test_eligibility_and_examples(pairs):
    eligibility = by(pairs, "eligibility")
    answers = Counter(pair.output.split(":")[0] for pair in eligibility.values())
    assert answers == {"Yes": 678, "No": 86}
    assert eligibility["CircularShapes"].instruction == "Can the EduGraph concept 'CircularShapes' be used as a direct label?"
    assert eligibility["CircularShapes"].output == (
        "No: 'CircularShapes' is organizational: it is composed of its parts ('Circle', 'HalfCircle' and "
        "'QuarterCircle') and is not used as a direct label."
    )
    assert eligibility["Polygon"].output == "Yes: 'Polygon' is a valid direct label (Area)."
    examples = by(pairs, "examples")
    assert examples["Addition"].instruction == "What are examples of the EduGraph concept 'Addition'?"
    assert examples["Addition"].output == "combining 3 and 4 to obtain 7."
    # The definition question answers with the definition alone, without the examples.
    assert by(pairs, "label_to_definition")["Addition"].output == "Combining numerical quantities to determine their total."


def test_logic_questions(pairs):
    logic = [pair for pair in pairs if pair.kind == "logic"]
    assert Counter(pair.instruction.split("'")[-1] for pair in logic) == {
        " imply?": 20,
        " contradict?": 30,
        " imply, directly or through other implications?": 17,
    }
    assert names(by(pairs, "incompatible")["MultiplesOf10"].output) == {"OddNumbers"}
    compatibility = by(pairs, "compatibility")
    assert compatibility["MultiplesOf10,OddNumbers"].instruction == (
        "Can the concepts 'MultiplesOf10' and 'OddNumbers' describe the same content?"
    )
    assert compatibility["MultiplesOf10,OddNumbers"].output == (
        "No: 'MultiplesOf10' implies 'EvenNumbers'; 'EvenNumbers' contradicts 'OddNumbers'."
    )
    assert compatibility["EvenNumbers,MultiplesOf1000"].output == (
        "Yes: 'MultiplesOf1000' implies 'EvenNumbers' (via 'MultiplesOf100' and 'MultiplesOf10')."
    )
    # "No": the 20 pairs stated as contradicting plus the 39 that contradict only through implies;
    # "Yes": the 87 pairs where one implies the other.
    assert Counter(pair.output.split(":")[0] for pair in compatibility.values()) == {"No": 20 + 39, "Yes": 87}


def test_every_label_answer_names_concepts_of_the_release(pairs, ontology_2026):
    labelled = [pair for pair in pairs if pair.kind in LABEL_ANSWER_KINDS]
    assert len(labelled) == 5166 - 764 - 400 - 764 - 146
    for pair in labelled:
        assert list(json.loads(pair.output)) == list(DIMENSIONS)
        assert names(pair.output) <= set(ontology_2026.concepts), pair
