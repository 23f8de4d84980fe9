"""Issue 22: the ontology as upstream has it now (specialization vs composition, label eligibility, logic), and
the same code reading every old release as before."""

import json

import pytest

from edugraph_pipeline.ontology.model import (
    DIMENSIONS,
    PART_OF_HIERARCHY,
    SPECIALIZATION_AND_COMPOSITION,
    Ontology,
)
from edugraph_pipeline.ontology.parsing import parse_release
from edugraph_pipeline_tests.conftest import load_shared_release, requires_shared
from edugraph_pipeline_tests.kit.remotes import release_tags, shared_release_files
from edugraph_pipeline_tests.ontology_2026 import load_ontology_2026


@pytest.fixture(scope="module")
def ontology_2026() -> Ontology:
    return load_ontology_2026()


def test_specialization_and_composition_are_kept_apart(ontology_2026):
    assert ontology_2026.reading == SPECIALIZATION_AND_COMPOSITION
    assert ontology_2026.counts() == {"Area": 283, "Scope": 352, "Ability": 129}
    # Read as before, Square and the proof methods had no parent: specializes was one more generic relation.
    square = ontology_2026.concepts["Square"]
    assert square.parents == ("Rectangle",) and square.part_of == ()
    assert ontology_2026.ancestors("Square") == ["Rectangle", "Parallelogram", "Quadrilateral", "Polygon"]
    assert ontology_2026.concepts["ProofByInduction"].parents == ("ProofMethod",)
    # Composition is not inheritance: a Circle is part of CircularShapes, not a kind of it.
    circle = ontology_2026.concepts["Circle"]
    assert circle.part_of == ("CircularShapes",) and circle.parents == ()
    assert ontology_2026.concepts["CircularShapes"].has_part == ("Circle", "HalfCircle", "QuarterCircle")
    assert "Circle" not in ontology_2026.concepts["CircularShapes"].children
    # structures, the super-property of both, is derived from the schema's declarations.
    assert circle.structures == ("CircularShapes",) and square.structures == ("Rectangle",)
    assert not any("specializes" in c.relations or "partOf" in c.relations for c in ontology_2026)


def test_relation_families_count_every_fact_once_with_what_the_schema_entails(ontology_2026):
    # Stated on individuals (../shared/ontology-2026/README.md): specializes 408, partOf 340, expands 296,
    # translates 70, integrates 66, contradicts 33, implies 20, inverts 15. The schema makes inverts a
    # sub-property of expands (+15) and translates one of integrates (+70), and structures the super-property of
    # specializes and partOf.
    assert ontology_2026.relation_counts() == {
        "specializes": 408,
        "partOf": 340,
        "structures": 748,
        "expands": 296 + 15,
        "integrates": 66 + 70,
        "translates": 70,
        "inverts": 15,
        "contradicts": 33,
        "implies": 20,
    }


def test_organizational_descriptors_are_not_offered_as_labels(ontology_2026):
    organizational = ontology_2026.organizational_labels()
    assert len(organizational) == 86  # the descriptors with constituent parts
    assert {dimension: len(ontology_2026.eligible_labels(dimension)) for dimension in DIMENSIONS} == {
        "Area": 283 - 52,
        "Scope": 352 - 21,
        "Ability": 129 - 13,
    }
    assert len(ontology_2026.eligible_labels()) == 764 - 86 == 678  # v0.30.0: 680, with its two additions
    assert not set(organizational) & set(ontology_2026.eligible_labels())
    assert not ontology_2026.is_eligible("CircularShapes") and not ontology_2026.is_eligible("JustificationScope")
    # Specialization children do not disqualify: Polygon has kinds (Triangle, ...) but no parts.
    assert ontology_2026.concepts["Polygon"].children and ontology_2026.is_eligible("http://edugraph.io/edu/Polygon")
    assert not ontology_2026.is_eligible("NoSuchConcept")
    with pytest.raises(ValueError, match="unknown dimension 'Areas'"):
        ontology_2026.eligible_labels("Areas")


def test_a_contradiction_reached_only_through_implies_is_found(ontology_2026):
    assert "OddNumbers" not in ontology_2026.concepts["MultiplesOf10"].relations.get("contradicts", ())
    assert not ontology_2026.is_compatible(["MultiplesOf10", "OddNumbers"])
    [conflict] = ontology_2026.incompatible_pairs(["http://edugraph.io/edu/OddNumbers", "MultiplesOf10", "Addition"])
    assert (conflict.first, conflict.second) == ("MultiplesOf10", "OddNumbers")
    assert conflict.contradiction == ("EvenNumbers", "OddNumbers")
    assert conflict.reason == "'MultiplesOf10' implies 'EvenNumbers'; 'EvenNumbers' contradicts 'OddNumbers'"
    # Two chains: NumbersLarger100 -> NumbersLarger20 -> NumbersLarger10 vs NumbersSmaller5 -> NumbersSmaller10.
    [longer] = ontology_2026.incompatible_pairs(["NumbersSmaller5", "NumbersLarger100"])
    assert longer.reason == (
        "'NumbersLarger100' implies 'NumbersLarger10' (via 'NumbersLarger20'); "
        "'NumbersSmaller5' implies 'NumbersSmaller10'; 'NumbersLarger10' contradicts 'NumbersSmaller10'"
    )
    # Overlapping ranges are compatible; so is a label with what it implies.
    assert ontology_2026.is_compatible(["NumbersSmaller20", "NumbersLarger10"])
    assert ontology_2026.is_compatible(["MultiplesOf100", "MultiplesOf10", "EvenNumbers"])
    assert ontology_2026.implied("MultiplesOf1000") == ("MultiplesOf100", "MultiplesOf10", "EvenNumbers")
    assert "OddNumbers" in ontology_2026.incompatible_with("MultiplesOf1000")
    with pytest.raises(ValueError, match="not concepts of ontology v0.26.0: Nonsense"):
        ontology_2026.is_compatible(["Nonsense", "OddNumbers"])


def test_definitions_and_examples_are_split_as_upstream_splits_them(ontology_2026):
    addition = ontology_2026.concepts["Addition"]
    assert addition.definition == "Combining numerical quantities to determine their total."
    assert addition.examples == "combining 3 and 4 to obtain 7."
    assert sum(1 for concept in ontology_2026 if concept.examples) == 400
    assert all(concept.definition for concept in ontology_2026)


def test_the_reading_comes_from_the_schema_not_the_version_number():
    assert load_ontology_2026("v0.19.0").reading == SPECIALIZATION_AND_COMPOSITION
    assert parse_release(shared_release_files("v0.21.0"), version="v0.30.0", commit="c").reading == PART_OF_HIERARCHY


PREFIXES = b"""@prefix edu: <http://edugraph.io/edu#> .
@prefix : <http://edugraph.io/edu/> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
"""
SCHEMA = b"""
edu:structures a owl:ObjectProperty .
edu:specializes a owl:ObjectProperty ; rdfs:subPropertyOf edu:structures .
edu:specializedBy a owl:ObjectProperty ; owl:inverseOf edu:specializes .
edu:partOf a owl:ObjectProperty ; rdfs:subPropertyOf edu:structures .
edu:hasPart a owl:ObjectProperty ; owl:inverseOf edu:partOf .
edu:implies a owl:ObjectProperty .
edu:impliedBy a owl:ObjectProperty ; owl:inverseOf edu:implies .
edu:contradicts a owl:ObjectProperty .
"""
INDIVIDUALS = b"""
:Shapes a edu:Area ; rdfs:isDefinedBy "Shapes." ; edu:hasPart :Round .
:Round a edu:Area ; rdfs:isDefinedBy "Round shapes." ; edu:specializedBy :Circle .
:Circle a edu:Area ; rdfs:isDefinedBy "Circles." ; rdfs:comment "a coin's outline." .
:Small a edu:Scope ; rdfs:isDefinedBy "Small." ; edu:impliedBy :Tiny .
:Tiny a edu:Scope ; rdfs:isDefinedBy "Tiny." .
:Large a edu:Scope ; rdfs:isDefinedBy "Large." ; edu:contradicts :Small .
"""


def test_inverse_and_super_property_facts_are_derived_from_the_declarations():
    ontology = parse_release({"core.ttl": PREFIXES + SCHEMA + INDIVIDUALS}, version="v9.0.0", commit="c")
    assert ontology.reading == SPECIALIZATION_AND_COMPOSITION
    assert ontology.concepts["Round"].part_of == ("Shapes",) and ontology.concepts["Circle"].parents == ("Round",)
    assert ontology.concepts["Circle"].structures == ("Round",) and ontology.concepts["Round"].structures == ("Shapes",)
    assert ontology.concepts["Tiny"].relations == {"implies": ("Small",)}
    assert ontology.eligible_labels() == ["Circle", "Large", "Round", "Small", "Tiny"]
    assert ontology.concepts["Circle"].examples == "a coin's outline."
    # Large contradicts Small, which Tiny implies: stated on neither Tiny nor with an edu:implies triple.
    [conflict] = ontology.incompatible_pairs(["Tiny", "Large"])
    assert conflict.reason == "'Tiny' implies 'Small'; 'Large' contradicts 'Small'"


def test_an_undeclared_inverse_is_not_guessed_from_its_name():
    # Without owl:inverseOf, hasPart is a relation of its own: its name alone says nothing.
    undeclared = PREFIXES + b""":Shapes a edu:Area ; edu:hasPart :Round .\n:Round a edu:Area .\n"""
    ontology = parse_release({"core.ttl": undeclared}, version="v9.0.0", commit="c")
    assert ontology.reading == PART_OF_HIERARCHY and not ontology.has_hierarchy()
    assert ontology.concepts["Shapes"].relations == {"hasPart": ("Round",)}
    # A predicate outside every family is normalised to the forward property it is declared the inverse of.
    inverse = PREFIXES + b"""edu:constrainedBy owl:inverseOf edu:constrains .
:A a edu:Area ; edu:constrainedBy :B .\n:B a edu:Area .\n"""
    ontology = parse_release({"core.ttl": inverse}, version="v9.0.0", commit="c")
    assert ontology.concepts["B"].relations == {"constrains": ("A",)}


@requires_shared
def test_old_releases_keep_their_partof_reading_and_every_label_eligible():
    for tag in release_tags():
        ontology = load_shared_release(tag)
        assert ontology.reading == PART_OF_HIERARCHY, tag
        assert len(ontology.eligible_labels()) == len(ontology), tag
        assert not any(concept.part_of or concept.has_part or concept.structures or concept.examples for concept in ontology), tag
    # v0.9.0 states each implication twice (implies and impliedBy): one fact each, in the forward direction.
    v090 = load_shared_release("v0.9.0")
    assert not any("impliedBy" in c.relations or "contradictedBy" in c.relations for c in v090)
    assert v090.relation_counts()["implies"] == 13 and v090.relation_counts()["contradicts"] == 14
    assert not v090.is_compatible(["NumbersSmaller10", "NumbersLarger10"])


def test_ontology_json_round_trips_with_eligibility_logic_and_its_hash(ontology_2026, tmp_path):
    path = tmp_path / "ontology.json"
    ontology_2026.save(path)
    data = json.loads(path.read_text())
    assert data["format"] == 2 and data["reading"] == SPECIALIZATION_AND_COMPOSITION
    assert data["content_sha256"] == ontology_2026.content_sha256()
    concepts = {raw["name"]: raw for raw in data["concepts"]}
    assert concepts["CircularShapes"]["eligible"] is False and concepts["Circle"]["eligible"] is True
    assert concepts["MultiplesOf10"]["relations"]["implies"] == ["EvenNumbers"]
    loaded = Ontology.load(path)
    assert loaded == ontology_2026
    assert loaded.eligible_labels() == ontology_2026.eligible_labels()
    assert not loaded.is_compatible(["MultiplesOf10", "OddNumbers"])
    # The hash covers the content, not the tag: the same files under another tag hash the same.
    assert load_ontology_2026("v0.27.0").content_sha256() == ontology_2026.content_sha256()


def test_an_edited_ontology_json_is_refused(ontology_2026, tmp_path):
    path = tmp_path / "ontology.json"
    ontology_2026.save(path)
    data = json.loads(path.read_text())
    next(raw for raw in data["concepts"] if raw["name"] == "CircularShapes")["eligible"] = True
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="not a normalised ontology file .*do not match its content_sha256"):
        Ontology.load(path)
    data["format"] = 3
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="format 3 is not one this pipeline reads"):
        Ontology.load(path)


# Written by `Ontology.save` before issue 22 (format 1), from a small release with partOf, implies/impliedBy and
# contradicts/contradictedBy, as model folders built then ship it.
FORMAT_1_NUMBERS = {
    "version": "v0.9.0", "commit": "c0ffee", "source_files": ["core.ttl"], "concepts": [
        {"name": "Larger10", "iri": "http://edugraph.io/edu/Larger10", "dimension": "Scope", "definition": "Above ten.",
         "parents": ["Numbers"], "children": [], "relations": {"contradictedBy": ["Smaller10"]}},
        {"name": "Larger20", "iri": "http://edugraph.io/edu/Larger20", "dimension": "Scope", "definition": "Above twenty.",
         "parents": ["Numbers"], "children": [], "relations": {"implies": ["Larger10"]}},
        {"name": "Numbers", "iri": "http://edugraph.io/edu/Numbers", "dimension": "Scope", "definition": "Numbers.",
         "parents": [], "children": ["Larger10", "Larger20", "Smaller10", "Smaller20"], "relations": {}},
        {"name": "Smaller10", "iri": "http://edugraph.io/edu/Smaller10", "dimension": "Scope", "definition": "Below ten.",
         "parents": ["Numbers"], "children": [], "relations": {"contradicts": ["Larger10"], "implies": ["Smaller20"]}},
        {"name": "Smaller20", "iri": "http://edugraph.io/edu/Smaller20", "dimension": "Scope",
         "definition": "Below twenty.", "parents": ["Numbers"], "children": [], "relations": {"impliedBy": ["Smaller10"]}},
    ],
}
# The same code on a release with specializes: filed as a generic relation, partOf read as the hierarchy.
FORMAT_1_SHAPES = {
    "version": "v0.26.0", "commit": "c0ffee", "source_files": ["core.ttl"], "concepts": [
        {"name": "Rectangle", "iri": "http://edugraph.io/edu/Rectangle", "dimension": "Area", "definition": "Rectangles.",
         "parents": ["Shapes"], "children": [], "relations": {}},
        {"name": "Shapes", "iri": "http://edugraph.io/edu/Shapes", "dimension": "Area", "definition": "Shapes.",
         "parents": [], "children": ["Rectangle"], "relations": {}},
        {"name": "Square", "iri": "http://edugraph.io/edu/Square", "dimension": "Area", "definition": "Squares.",
         "parents": [], "children": [], "relations": {"specializes": ["Rectangle"]}},
    ],
}


def test_an_ontology_json_written_before_issue_22_loads_for_old_releases(tmp_path):
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps(FORMAT_1_NUMBERS))
    loaded = Ontology.load(path)
    assert loaded.reading == PART_OF_HIERARCHY and loaded.version == "v0.9.0"
    assert loaded.concepts["Smaller10"].parents == ("Numbers",)
    assert loaded.eligible_labels("Scope") == ["Larger10", "Larger20", "Numbers", "Smaller10", "Smaller20"]
    [conflict] = loaded.incompatible_pairs(["Larger20", "Smaller20", "Smaller10"])
    assert (conflict.first, conflict.second) == ("Larger20", "Smaller10")
    assert not loaded.is_compatible(["Larger20", "Smaller10"])
    assert loaded.is_compatible(["Larger20", "Smaller20"]) and loaded.is_compatible(["Smaller10", "Smaller20"])
    assert [pair.reason for pair in loaded.incompatible_pairs(["Larger20", "Smaller10"])] == [
        "'Larger20' implies 'Larger10'; 'Smaller10' contradicts 'Larger10'"
    ]
    # Saved again, it is a format-2 file that round-trips.
    loaded.save(path)
    assert json.loads(path.read_text())["format"] == 2 and Ontology.load(path) == loaded


def test_an_ontology_json_written_before_issue_22_from_a_specialization_release_is_refused(tmp_path):
    path = tmp_path / "ontology.json"
    path.write_text(json.dumps(FORMAT_1_SHAPES))
    with pytest.raises(ValueError, match=r"written before issue 22 from release v0.26.0, which has specialization"):
        Ontology.load(path)
