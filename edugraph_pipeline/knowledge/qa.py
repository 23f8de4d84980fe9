"""Knowledge-infusion (KI) question/answer pairs generated from one ontology release.

Upstream generated definition -> label pairs plus parent/children questions; its hierarchy questions only
looked for ``partOfArea``-style predicates, so from v0.6.0 on (single ``edu:partOf``) they silently vanished.
Here every question kind works on the normalised model, whatever the release format. Output is
deterministic: the same release always yields the same rows in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from edugraph_pipeline.labels import format_answer
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology

QUESTION_KINDS: tuple[str, ...] = (
    "definition_to_label",  # upstream: a definition -> the concept it defines
    "parent",  # upstream: "What is the parent of ...?"
    "children",  # upstream: "What are the children of ...?"
    "label_to_definition",  # reverse of the first: what a concept means
    "dimension",  # which dimension a concept name belongs to
    "ancestors",  # the full chain up the hierarchy, where it is deeper than one level
    "relation",  # expands / translates / implies / contradicts / integrates / inverts ...
    "top_level",  # the roots of each dimension's hierarchy
)


@dataclass(frozen=True)
class QAPair:
    kind: str
    concept: str
    instruction: str
    output: str

    def as_row(self) -> dict:
        row = asdict(self)
        row["messages"] = [
            {"role": "user", "content": self.instruction},
            {"role": "assistant", "content": self.output},
        ]
        return row


def _verb(relation: str) -> str:
    """'expands' -> 'expand', 'implies' -> 'imply': the form that follows 'does X ...?'."""
    if relation.endswith("ies"):
        return relation[:-3] + "y"
    return relation[:-1] if relation.endswith("s") else relation


def generate_pairs(ontology: Ontology) -> list[QAPair]:
    pairs = list(_definition_pairs(ontology))
    for concept in ontology:
        name = concept.name
        if concept.parents:
            pairs.append(
                QAPair(
                    "parent",
                    name,
                    f"What is the parent of the concept '{name}'?",
                    format_answer(ontology.group_by_dimension(concept.parents)),
                )
            )
        if concept.children:
            pairs.append(
                QAPair(
                    "children",
                    name,
                    f"What are the children of the concept '{name}'?",
                    format_answer(ontology.group_by_dimension(concept.children)),
                )
            )
        if concept.definition:
            pairs.append(
                QAPair(
                    "label_to_definition",
                    name,
                    f"What does the EduGraph concept '{name}' mean?",
                    concept.definition,
                )
            )
        pairs.append(
            QAPair(
                "dimension",
                name,
                f"Which EduGraph dimension (Area, Scope or Ability) does the concept '{name}' belong to?",
                format_answer({concept.dimension: [name]}),
            )
        )
        ancestors = ontology.ancestors(name)
        if len(ancestors) > len(concept.parents):
            pairs.append(
                QAPair(
                    "ancestors",
                    name,
                    f"Which concepts contain the concept '{name}', directly or indirectly?",
                    format_answer(ontology.group_by_dimension(ancestors)),
                )
            )
        for relation, targets in concept.relations.items():
            pairs.append(
                QAPair(
                    "relation",
                    name,
                    f"Which concepts does the concept '{name}' {_verb(relation)}?",
                    format_answer(ontology.group_by_dimension(targets)),
                )
            )
    pairs.extend(_top_level_pairs(ontology))
    order = {kind: index for index, kind in enumerate(QUESTION_KINDS)}
    return sorted(pairs, key=lambda pair: (order[pair.kind], pair.concept, pair.instruction))


def _definition_pairs(ontology: Ontology) -> Iterator[QAPair]:
    # Two concepts may share a definition text; one question then names both, so no question repeats.
    by_definition: dict[str, list[str]] = defaultdict(list)
    for concept in ontology:
        if concept.definition:
            by_definition[concept.definition].append(concept.name)
    for definition, names in by_definition.items():
        yield QAPair("definition_to_label", ",".join(names), definition, format_answer(ontology.group_by_dimension(names)))


def _top_level_pairs(ontology: Ontology) -> Iterator[QAPair]:
    if not ontology.has_hierarchy():
        return
    for dimension in DIMENSIONS:
        roots = [concept.name for concept in ontology.by_dimension(dimension) if not concept.parents and concept.children]
        if roots:
            yield QAPair(
                "top_level",
                dimension,
                f"What are the top-level concepts of the EduGraph dimension '{dimension}'?",
                format_answer({dimension: roots}),
            )


def count_by_kind(pairs: list[QAPair]) -> dict[str, int]:
    counts = {kind: 0 for kind in QUESTION_KINDS}
    for pair in pairs:
        counts[pair.kind] += 1
    return counts
