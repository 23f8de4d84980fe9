"""Parse the files of one ontology release (any format upstream ever shipped) into the normalised model.

Turtle is the source of truth: releases from v0.7.0 on also carry an RDF/XML file that upstream generated
once and rarely refreshed (measured: in v0.21.0 it lacks 1,608 of the Turtle triples), so RDF/XML is only
read when a release has no Turtle at all. Every RDF/XML file is still screened, because a hostile file in a
release means the release cannot be trusted.

Relations are normalised through the release's own property declarations (`schema`), and the release's reading of
its hierarchy is decided from them too (`reading_of`): `partOf` is the hierarchy up to v0.21.0; a release with
`specializes` has specialization as its taxonomy and `partOf` as composition, which decides label eligibility.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import PurePosixPath
from xml.parsers import expat

import rdflib
from rdflib import RDF, RDFS, URIRef
from rdflib.term import Literal

from edugraph_pipeline.ontology.model import (
    DIMENSIONS,
    PART_OF,
    PART_OF_HIERARCHY,
    SPECIALIZATION_AND_COMPOSITION,
    SPECIALIZES,
    STRUCTURES,
    Concept,
    Ontology,
    concept_name,
)
from edugraph_pipeline.ontology.schema import PropertySchema, local_name

EDU = rdflib.Namespace("http://edugraph.io/edu#")
TURTLE_SUFFIXES = (".ttl",)
RDFXML_SUFFIXES = (".rdf", ".owl")
MAX_FILE_BYTES = 64 * 1024 * 1024
# Upstream's longest definition is ~2,000 characters; a far longer literal is no definition and would become a
# training prompt of that size.
MAX_DEFINITION_CHARS = 20_000


class OntologyReleaseError(ValueError):
    """A release that cannot be turned into an ontology; the message names the file and the problem."""


def is_ontology_file(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in TURTLE_SUFFIXES + RDFXML_SUFFIXES


def screen_rdfxml(path: str, data: bytes) -> None:
    """Reject XML that could reach outside the file: external entities and nested-entity expansion bombs.

    Internal entities with plain values (Protégé writes ``<!ENTITY owl "http://...#">``) stay allowed.
    """
    parser = expat.ParserCreate()

    def on_entity(name, _is_parameter, value, _base, system_id, public_id, _notation):
        if system_id or public_id:
            raise OntologyReleaseError(
                f"{path}: declares external entity {name!r} ({system_id or public_id}); "
                "ontology files must be self-contained"
            )
        if value and "&" in value:
            raise OntologyReleaseError(f"{path}: entity {name!r} expands other entities; refusing to expand it")

    def on_external_ref(*_args):
        raise OntologyReleaseError(f"{path}: references an external entity; ontology files must be self-contained")

    parser.EntityDeclHandler = on_entity
    parser.ExternalEntityRefHandler = on_external_ref
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise OntologyReleaseError(f"{path}: not well-formed XML ({error})") from error


def _parse_graph(files: Mapping[str, bytes]) -> tuple[rdflib.Graph, list[str]]:
    ontology_files = {path: data for path, data in files.items() if is_ontology_file(path)}
    if not ontology_files:
        raise OntologyReleaseError(
            "release contains no ontology file (expected *.ttl, or *.rdf / *.owl RDF/XML); "
            f"files present: {sorted(files) or 'none'}"
        )
    for path, data in ontology_files.items():
        if len(data) > MAX_FILE_BYTES:
            raise OntologyReleaseError(f"{path}: {len(data)} bytes exceeds the {MAX_FILE_BYTES}-byte limit")
        if path.lower().endswith(RDFXML_SUFFIXES):
            screen_rdfxml(path, data)

    turtle = sorted(path for path in ontology_files if path.lower().endswith(TURTLE_SUFFIXES))
    chosen = turtle or sorted(ontology_files)
    graph = rdflib.Graph()
    for path in chosen:
        rdf_format = "turtle" if path.lower().endswith(TURTLE_SUFFIXES) else "xml"
        try:
            graph.parse(data=ontology_files[path], format=rdf_format, publicID=f"file:///release/{path}")
        except Exception as error:  # rdflib raises many unrelated types for bad syntax
            line = getattr(error, "lines", None)
            where = f" near line {line + 1}" if isinstance(line, int) else ""
            raise OntologyReleaseError(
                f"{path}: invalid {rdf_format}{where} ({type(error).__name__}: {error})"
            ) from error
    return graph, chosen


def _texts(graph: rdflib.Graph, subject: URIRef, name: str, used: list[str]) -> dict[URIRef, list[str]]:
    found = {}
    for predicate in (RDFS.isDefinedBy, RDFS.comment):
        texts = sorted(str(value).strip() for value in graph.objects(subject, predicate) if isinstance(value, Literal))
        found[predicate] = [text for text in texts if text]
        for text in found[predicate]:
            if len(text) > MAX_DEFINITION_CHARS:
                raise OntologyReleaseError(
                    f"{', '.join(used)}: the definition of concept {name!r} has {len(text):,} characters, "
                    f"more than the {MAX_DEFINITION_CHARS:,} a definition may have"
                )
    return found


def _definition_and_examples(texts: dict[URIRef, list[str]], reading: str) -> tuple[str, str]:
    """The definition (rdfs:isDefinedBy, else rdfs:comment) and, where the release splits them, the examples.

    From the specialization structure on, upstream keeps definitions short and moves examples to rdfs:comment;
    before it a comment beside a definition is a second description, which this reading never used.
    """
    defined, comments = texts[RDFS.isDefinedBy], texts[RDFS.comment]
    if not defined:
        return (comments[0] if comments else ""), ""
    examples = "\n".join(comments) if reading == SPECIALIZATION_AND_COMPOSITION else ""
    return defined[0], examples


def _concept_dimensions(graph: rdflib.Graph, used: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    dimension_of: dict[str, str] = {}
    iri_of: dict[str, str] = {}
    for dimension in DIMENSIONS:
        for subject in graph.subjects(RDF.type, EDU[dimension]):
            name = local_name(str(subject)) if isinstance(subject, URIRef) else None
            if name is None or name in DIMENSIONS:
                continue
            if dimension_of.get(name, dimension) != dimension:
                raise OntologyReleaseError(
                    f"{', '.join(used)}: concept {name!r} is typed both {dimension_of[name]} and {dimension}"
                )
            dimension_of[name] = dimension
            iri_of[name] = str(subject)
    if not dimension_of:
        raise OntologyReleaseError(
            f"{', '.join(used)}: no concept typed edu:Area, edu:Scope or edu:Ability; not an EduGraph release"
        )
    return dimension_of, iri_of


def _facts(graph: rdflib.Graph, schema: PropertySchema, concepts: Mapping[str, str]) -> dict[str, set[tuple[str, str]]]:
    """Every relation fact between two concepts, by normalised relation: (subject, object), self-loops left out."""
    facts: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for subject, predicate, obj in graph:
        predicate_name = local_name(str(predicate))
        source, target = local_name(str(subject)), local_name(str(obj))
        if predicate_name is None or source not in concepts or target not in concepts or source == target:
            continue
        for statement in schema.statements(predicate_name):
            facts[statement.relation].add((target, source) if statement.reverse else (source, target))
    return facts


def reading_of(schema: PropertySchema, facts: Mapping[str, set[tuple[str, str]]]) -> str:
    """How the release's hierarchy reads, from its own schema rather than its version number: a release that
    declares (or uses) `specializes` keeps specialization and composition apart; before that `partOf` is the one
    hierarchy."""
    if schema.declares_specialization() or facts.get(SPECIALIZES):
        return SPECIALIZATION_AND_COMPOSITION
    return PART_OF_HIERARCHY


def _targets(pairs: set[tuple[str, str]]) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(subject -> sorted objects, object -> sorted subjects) of one relation's facts."""
    forward: dict[str, set[str]] = defaultdict(set)
    backward: dict[str, set[str]] = defaultdict(set)
    for source, target in pairs:
        forward[source].add(target)
        backward[target].add(source)
    return (
        {name: tuple(sorted(values)) for name, values in forward.items()},
        {name: tuple(sorted(values)) for name, values in backward.items()},
    )


def parse_release(files: Mapping[str, bytes], *, version: str, commit: str) -> Ontology:
    """Normalise the ontology files of one release (path -> bytes) into an `Ontology`."""
    graph, used = _parse_graph(files)
    dimension_of, iri_of = _concept_dimensions(graph, used)
    schema = PropertySchema(graph)
    facts = _facts(graph, schema, dimension_of)
    reading = reading_of(schema, facts)
    composition_apart = reading == SPECIALIZATION_AND_COMPOSITION

    parents, children = _targets(facts.pop(SPECIALIZES if composition_apart else PART_OF, set()))
    part_of, has_part = _targets(facts.pop(PART_OF, set()) if composition_apart else set())
    structures, structured_by = _targets(facts.pop(STRUCTURES, set()))
    relations = {relation: _targets(pairs)[0] for relation, pairs in sorted(facts.items())}

    concepts = {}
    for name in sorted(dimension_of):
        definition, examples = _definition_and_examples(_texts(graph, URIRef(iri_of[name]), name, used), reading)
        concepts[name] = Concept(
            name=name,
            iri=iri_of[name],
            dimension=dimension_of[name],
            definition=definition,
            parents=parents.get(name, ()),
            children=children.get(name, ()),
            relations={relation: targets[name] for relation, targets in relations.items() if name in targets},
            part_of=part_of.get(name, ()),
            has_part=has_part.get(name, ()),
            structures=structures.get(name, ()),
            structured_by=structured_by.get(name, ()),
            examples=examples,
            # Upstream's rule: a descriptor with constituent parts is organizational, no direct label.
            eligible=not has_part.get(name),
        )
    return Ontology(version=version, commit=commit, concepts=concepts, source_files=tuple(used), reading=reading)


__all__ = ["OntologyReleaseError", "concept_name", "is_ontology_file", "parse_release", "reading_of", "screen_rdfxml"]
