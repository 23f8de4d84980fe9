"""Parse the files of one ontology release (any format upstream ever shipped) into the normalised model.

Turtle is the source of truth: releases from v0.7.0 on also carry an RDF/XML file that upstream generated
once and rarely refreshed (measured: in v0.21.0 it lacks 1,608 of the Turtle triples), so RDF/XML is only
read when a release has no Turtle at all. Every RDF/XML file is still screened, because a hostile file in a
release means the release cannot be trusted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import PurePosixPath
from xml.parsers import expat

import rdflib
from rdflib import RDF, RDFS, URIRef
from rdflib.term import Literal

from edugraph_pipeline.ontology.model import DIMENSIONS, EDU_NAMESPACES, Concept, Ontology, concept_name

EDU = rdflib.Namespace("http://edugraph.io/edu#")
TURTLE_SUFFIXES = (".ttl",)
RDFXML_SUFFIXES = (".rdf", ".owl")
MAX_FILE_BYTES = 64 * 1024 * 1024
# Upstream's longest definition is ~2,000 characters; a far longer literal is no definition and would become a
# training prompt of that size.
MAX_DEFINITION_CHARS = 20_000
_HIERARCHY_UP = {"partOf", "partOfArea", "partOfScope", "partOfAbility"}
_HIERARCHY_DOWN = {"hasPart", "hasPartArea", "hasPartScope", "hasPartAbility"}


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


def _local_name(iri: str) -> str | None:
    for namespace in EDU_NAMESPACES:
        if iri.startswith(namespace) and len(iri) > len(namespace):
            return iri[len(namespace) :]
    return None


def _normalised_relation(predicate: str) -> str:
    for dimension in DIMENSIONS:
        if predicate.endswith(dimension) and len(predicate) > len(dimension):
            return predicate[: -len(dimension)]
    return predicate


def _text(graph: rdflib.Graph, subject: URIRef, name: str, used: list[str]) -> str:
    for predicate in (RDFS.isDefinedBy, RDFS.comment):
        texts = sorted(str(value).strip() for value in graph.objects(subject, predicate) if isinstance(value, Literal))
        texts = [text for text in texts if text]
        if texts:
            if len(texts[0]) > MAX_DEFINITION_CHARS:
                raise OntologyReleaseError(
                    f"{', '.join(used)}: the definition of concept {name!r} has {len(texts[0]):,} characters, "
                    f"more than the {MAX_DEFINITION_CHARS:,} a definition may have"
                )
            return texts[0]
    return ""


def parse_release(files: Mapping[str, bytes], *, version: str, commit: str) -> Ontology:
    """Normalise the ontology files of one release (path -> bytes) into an `Ontology`."""
    graph, used = _parse_graph(files)

    dimension_of: dict[str, str] = {}
    iri_of: dict[str, str] = {}
    for dimension in DIMENSIONS:
        for subject in graph.subjects(RDF.type, EDU[dimension]):
            name = _local_name(str(subject)) if isinstance(subject, URIRef) else None
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

    parents: dict[str, set[str]] = defaultdict(set)
    relations: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for subject, predicate, obj in graph:
        predicate_name = _local_name(str(predicate))
        source, target = _local_name(str(subject)), _local_name(str(obj))
        if predicate_name is None or source not in dimension_of or target not in dimension_of:
            continue
        if predicate_name in _HIERARCHY_UP:
            parents[source].add(target)
        elif predicate_name in _HIERARCHY_DOWN:
            parents[target].add(source)
        elif source != target:
            relations[source][_normalised_relation(predicate_name)].add(target)

    children: dict[str, set[str]] = defaultdict(set)
    for child, child_parents in parents.items():
        for parent in child_parents:
            children[parent].add(child)

    concepts = {
        name: Concept(
            name=name,
            iri=iri_of[name],
            dimension=dimension_of[name],
            definition=_text(graph, URIRef(iri_of[name]), name, used),
            parents=tuple(sorted(parents[name] - {name})),
            children=tuple(sorted(children[name] - {name})),
            relations={key: tuple(sorted(values)) for key, values in sorted(relations[name].items())},
        )
        for name in sorted(dimension_of)
    }
    return Ontology(version=version, commit=commit, concepts=concepts, source_files=tuple(used))


__all__ = ["OntologyReleaseError", "concept_name", "is_ontology_file", "parse_release", "screen_rdfxml"]
