import pytest

from edugraph_pipeline.ontology.model import Ontology, concept_name
from edugraph_pipeline.ontology.parsing import OntologyReleaseError, parse_release, screen_rdfxml
from edugraph_pipeline_tests.conftest import load_shared_release, requires_shared
from edugraph_pipeline_tests.kit.remotes import release_tags, shared_release_files


@requires_shared
def test_every_upstream_release_parses_with_hierarchy_and_definitions():
    tags = release_tags()
    assert len(tags) == 52
    for tag in tags:
        ontology = load_shared_release(tag)
        assert all(ontology.counts()[dimension] > 50 for dimension in ("Area", "Scope", "Ability")), tag
        assert ontology.has_hierarchy(), tag
        # v0.1.0-v0.5.0 leave 31-34 concepts undefined; later releases define all of them.
        undefined = sum(1 for concept in ontology if not concept.definition)
        assert undefined <= 34, tag


@requires_shared
@pytest.mark.parametrize(
    ("tag", "areas", "scopes", "abilities", "files"),
    [
        ("v0.1.0", 78, 67, 149, ("core-ontology.ttl",)),
        ("v0.5.0", 78, 91, 149, ("core-ontology.ttl",)),
        ("v0.6.0", 203, 117, 124, ("core-abilities.ttl", "core-areas-math.ttl", "core-schema.ttl", "core-scopes-math.ttl")),
        ("v0.9.6", 207, 189, 125, ("core-abilities.ttl", "core-areas-math.ttl", "core-schema.ttl", "core-scopes-math.ttl")),
        ("v0.21.0", 278, 326, 125, ("core-abilities.ttl", "core-areas-math.ttl", "core-schema.ttl", "core-scopes-math.ttl")),
    ],
)
def test_concept_counts_per_dimension(tag, areas, scopes, abilities, files):
    ontology = load_shared_release(tag)
    assert ontology.counts() == {"Area": areas, "Scope": scopes, "Ability": abilities}
    # Turtle is authoritative; the stale RDF/XML beside it (v0.7.0+) is not read.
    assert ontology.source_files == files


@requires_shared
def test_old_format_hierarchy_and_relations_are_normalised():
    ontology = load_shared_release("v0.1.0")
    abacus = ontology.concepts["Abacus"]
    assert abacus.dimension == "Scope"
    assert abacus.iri == "http://edugraph.io/edu#Abacus"
    assert abacus.parents == ("PhysicalNumbers",)
    assert "Abacus" in ontology.concepts["PhysicalNumbers"].children
    assert abacus.definition == "Represents numbers with an abacus."
    # expandsArea (v0.1.0) becomes the same relation name as edu:expands (v0.6.0+).
    assert any("expands" in concept.relations for concept in ontology)
    assert not any(name.endswith("Area") for concept in ontology for name in concept.relations)


@requires_shared
def test_new_format_hierarchy_relations_and_ancestors():
    ontology = load_shared_release("v0.21.0")
    addition = ontology.concepts["AdditionCountingOn"]
    assert addition.iri == "http://edugraph.io/edu/AdditionCountingOn"
    assert addition.parents == ("IntegerStrategies",)
    assert addition.relations["expands"] == ("Addition", "Increment")
    ancestors = ontology.ancestors("AdditionCountingOn")
    assert ancestors[0] == "IntegerStrategies" and len(ancestors) >= 2
    assert {"implies", "contradicts", "translates", "integrates", "inverts"} <= {
        relation for concept in ontology for relation in concept.relations
    }
    assert sum(len(concept.parents) for concept in ontology) == 710  # every edu:partOf triple


@requires_shared
def test_rdfxml_only_release_is_read():
    rdf = shared_release_files("v0.21.0")["core-ontology-math.rdf"]
    ontology = parse_release({"core-ontology-math.rdf": rdf}, version="v0.21.0", commit="x")
    assert ontology.source_files == ("core-ontology-math.rdf",)
    assert len(ontology) > 300 and ontology.has_hierarchy()


@requires_shared
def test_normalised_model_round_trips(tmp_path):
    ontology = load_shared_release("v0.9.6")
    ontology.save(tmp_path / "ontology.json")
    assert Ontology.load(tmp_path / "ontology.json") == ontology


def test_labels_resolve_from_any_namespace():
    assert concept_name("http://edugraph.io/edu#IntegerAddition") == "IntegerAddition"
    assert concept_name("http://edugraph.io/edu/IntegerAddition") == "IntegerAddition"
    assert concept_name(" IntegerAddition ") == "IntegerAddition"


MINIMAL_TTL = b"""@prefix edu: <http://edugraph.io/edu#> .
@prefix : <http://edugraph.io/edu/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
:Counting a edu:Area ; rdfs:isDefinedBy "Counting things." .
:Arithmetic a edu:Area ; rdfs:comment "Only a comment." .
:Counting edu:partOf :Arithmetic .
"""


def test_definition_falls_back_to_comment():
    ontology = parse_release({"core.ttl": MINIMAL_TTL}, version="v1.0.0", commit="c")
    assert ontology.concepts["Arithmetic"].definition == "Only a comment."
    assert ontology.concepts["Arithmetic"].children == ("Counting",)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "release contains no ontology file"),
        ({"README.md": b"# nothing"}, "files present: ['README.md']"),
        ({"core.ttl": MINIMAL_TTL + b"\n:Broken a edu:Area ; rdfs:comment \"unterminated ."}, "core.ttl: invalid turtle"),
        ({"core.ttl": b"@prefix edu: <http://edugraph.io/edu#> ."}, "core.ttl: no concept typed edu:Area"),
        ({"core-ontology.rdf": b"<rdf:RDF"}, "core-ontology.rdf: not well-formed XML"),
    ],
)
def test_bad_releases_fail_naming_the_file(files, message):
    with pytest.raises(OntologyReleaseError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_release(files, version="v1.0.0", commit="c")


def test_external_entities_are_refused_before_parsing(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    hostile = f"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [<!ENTITY leak SYSTEM "file://{secret}">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">
  <rdf:Description rdf:about="http://edugraph.io/edu/X"><rdfs:comment>&leak;</rdfs:comment></rdf:Description>
</rdf:RDF>""".encode()
    with pytest.raises(OntologyReleaseError, match="core-ontology.rdf: declares external entity 'leak'") as error:
        parse_release({"core-ontology.rdf": hostile}, version="v1.0.0", commit="c")
    assert "TOP-SECRET" not in str(error.value)


def test_entity_expansion_bombs_are_refused():
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<r>&b;</r>"""
    with pytest.raises(OntologyReleaseError, match="entity 'b' expands other entities"):
        screen_rdfxml("bomb.rdf", bomb)


def test_plain_internal_entities_stay_allowed():
    protege_style = b"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [<!ENTITY edu "http://edugraph.io/edu#">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="http://edugraph.io/edu/Counting"><rdf:type rdf:resource="&edu;Area"/></rdf:Description>
</rdf:RDF>"""
    ontology = parse_release({"o.rdf": protege_style}, version="v1.0.0", commit="c")
    assert ontology.counts()["Area"] == 1
