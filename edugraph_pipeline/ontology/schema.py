"""What a release's own schema says about its relations: which normalised relation each predicate states.

Every release declares its object properties with ``rdfs:subPropertyOf`` and ``owl:inverseOf`` (v0.1.0:
``partOfArea`` is a sub-property of ``partOf``, ``hasPartArea`` the inverse of ``partOfArea``; v0.22+:
``specializes`` and ``partOf`` are sub-properties of ``structures``, ``inverts`` of ``expands``). A fact stated
with one predicate is therefore also a fact of each property the schema says it entails, in the direction the
inverse declarations give: derived from the declarations, never from the shape of a predicate's name.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

import rdflib
from rdflib import OWL, RDF, RDFS, URIRef

from edugraph_pipeline.ontology.model import EDU_NAMESPACES, KNOWN_RELATIONS, SPECIALIZES


def local_name(iri: str) -> str | None:
    """The name after an EduGraph namespace, or None for anything else (OWL, RDF, blank nodes)."""
    for namespace in EDU_NAMESPACES:
        if iri.startswith(namespace) and len(iri) > len(namespace):
            return iri[len(namespace) :]
    return None


@dataclass(frozen=True)
class Statement:
    """A normalised relation a predicate states; `reverse` when the predicate's subject is the relation's object."""

    relation: str
    reverse: bool


class PropertySchema:
    """The sub-property and inverse declarations among a release's EduGraph properties."""

    def __init__(self, graph: rdflib.Graph):
        self._supers: dict[str, set[str]] = defaultdict(set)
        self._inverses: dict[str, set[str]] = defaultdict(set)
        # Upstream declares owl:inverseOf on the derived direction (hasPart inverseOf partOf): the declaring
        # property is the inverse, its object the direction facts are normalised to.
        self._declared_inverse: set[str] = set()
        for subject, obj in graph.subject_objects(RDFS.subPropertyOf):
            sub, sup = local_name(str(subject)), local_name(str(obj))
            if sub and sup and sub != sup:
                self._supers[sub].add(sup)
        for subject, obj in graph.subject_objects(OWL.inverseOf):
            first, second = local_name(str(subject)), local_name(str(obj))
            if first and second and first != second:
                self._inverses[first].add(second)
                self._inverses[second].add(first)  # owl:inverseOf is symmetric
                self._declared_inverse.add(first)
        self.declared: frozenset[str] = frozenset(
            name
            for kind in (OWL.ObjectProperty, RDF.Property)
            for name in (local_name(str(subject)) for subject in graph.subjects(RDF.type, kind) if isinstance(subject, URIRef))
            if name
        )
        self._cache: dict[str, tuple[Statement, ...]] = {}

    def declares_specialization(self) -> bool:
        return SPECIALIZES in self.declared

    def entailed(self, predicate: str) -> set[Statement]:
        """Every property a fact stated with `predicate` is also a fact of, with its direction."""
        reached = {Statement(predicate, False)}
        queue = deque(reached)
        while queue:
            current = queue.popleft()
            following = [Statement(sup, current.reverse) for sup in sorted(self._supers.get(current.relation, ()))]
            following += [Statement(inv, not current.reverse) for inv in sorted(self._inverses.get(current.relation, ()))]
            for statement in following:
                if statement not in reached:
                    reached.add(statement)
                    queue.append(statement)
        return reached

    def statements(self, predicate: str) -> tuple[Statement, ...]:
        """The normalised relations a fact stated with `predicate` belongs to.

        The known relations it entails (`hasPartArea` -> partOf reversed; `inverts` -> inverts and expands); for a
        predicate outside every known family, the one forward property it amounts to (`constrainedBy` ->
        constrains reversed), or itself.
        """
        if predicate not in self._cache:
            reached = self.entailed(predicate)
            known = sorted((s for s in reached if s.relation in KNOWN_RELATIONS), key=lambda s: s.relation)
            if known:
                self._cache[predicate] = tuple(known)
            else:
                forward = sorted(
                    (s for s in reached if s.relation not in self._declared_inverse),
                    key=lambda s: (s.relation != predicate, s.relation),
                )
                self._cache[predicate] = (forward[0] if forward else Statement(predicate, False),)
        return self._cache[predicate]


__all__ = ["PropertySchema", "Statement", "local_name"]
