"""Questions about a release's structure: its taxonomy, its composition and its progression relations.

The taxonomy is the release's hierarchy: specialization where the release has `specializes` ("is a kind of"),
`partOf` where that was the only hierarchy (v0.1.0-v0.21.0, worded as before). Composition (`partOf` where it is
apart from specialization) is always worded as "part of", never as a kind: a part inherits nothing from its whole.
"""

from __future__ import annotations

from collections.abc import Iterator

from edugraph_pipeline.knowledge.pairs import QAPair
from edugraph_pipeline.labels import format_answer
from edugraph_pipeline.ontology.model import DIMENSIONS, LOGIC_RELATIONS, Concept, Ontology

# (parent, children, ancestors) questions per reading of the hierarchy.
_TAXONOMY_WORDING = {
    False: (
        "What is the parent of the concept '{}'?",
        "What are the children of the concept '{}'?",
        "Which concepts contain the concept '{}', directly or indirectly?",
    ),
    True: (
        "Which broader concepts is the concept '{}' a kind of?",
        "Which concepts are kinds of the concept '{}'?",
        "Which concepts is the concept '{}' a kind of, directly or indirectly?",
    ),
}
PART_OF_QUESTION = "Which concepts is the concept '{}' part of?"
PARTS_QUESTION = "Which concepts are parts of the concept '{}'?"


def _labels(ontology: Ontology, names) -> str:
    return format_answer(ontology.group_by_dimension(names))


def verb(relation: str) -> str:
    """'expands' -> 'expand', 'implies' -> 'imply': the form that follows 'does X ...?'."""
    if relation.endswith("ies"):
        return relation[:-3] + "y"
    return relation[:-1] if relation.endswith("s") else relation


def taxonomy_pairs(ontology: Ontology, concept: Concept) -> Iterator[QAPair]:
    parent_question, children_question, ancestors_question = _TAXONOMY_WORDING[ontology.has_composition()]
    name = concept.name
    if concept.parents:
        yield QAPair("parent", name, parent_question.format(name), _labels(ontology, concept.parents))
    if concept.children:
        yield QAPair("children", name, children_question.format(name), _labels(ontology, concept.children))
    ancestors = ontology.ancestors(name)
    if len(ancestors) > len(concept.parents):
        yield QAPair("ancestors", name, ancestors_question.format(name), _labels(ontology, ancestors))


def composition_pairs(ontology: Ontology, concept: Concept) -> Iterator[QAPair]:
    if concept.part_of:
        yield QAPair("part_of", concept.name, PART_OF_QUESTION.format(concept.name), _labels(ontology, concept.part_of))
    if concept.has_part:
        yield QAPair("parts", concept.name, PARTS_QUESTION.format(concept.name), _labels(ontology, concept.has_part))


def relation_pairs(ontology: Ontology, concept: Concept) -> Iterator[QAPair]:
    """Progression (and any other non-logic) relations, each with what the release's schema entails."""
    for relation, targets in concept.relations.items():
        if relation not in LOGIC_RELATIONS:
            question = f"Which concepts does the concept '{concept.name}' {verb(relation)}?"
            yield QAPair("relation", concept.name, question, _labels(ontology, targets))


def top_level_pairs(ontology: Ontology) -> Iterator[QAPair]:
    """The roots of each dimension: nothing above them in the release's whole structure, something below."""
    if not ontology.has_hierarchy():
        return
    below = {parent for concept in ontology for parent in ontology.structural_parents(concept.name)}
    for dimension in DIMENSIONS:
        roots = [
            concept.name
            for concept in ontology.by_dimension(dimension)
            if not ontology.structural_parents(concept.name) and concept.name in below
        ]
        if roots:
            yield QAPair(
                "top_level",
                dimension,
                f"What are the top-level concepts of the EduGraph dimension '{dimension}'?",
                format_answer({dimension: roots}),
            )
