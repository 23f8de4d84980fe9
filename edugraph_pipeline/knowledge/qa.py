"""Knowledge-infusion (KI) question/answer pairs generated from one ontology release.

Upstream generated definition -> label pairs plus parent/children questions; its hierarchy questions only
looked for ``partOfArea``-style predicates, so from v0.6.0 on (single ``edu:partOf``) they silently vanished.
Here every question kind works on the normalised model, whatever the release format, and follows the release's
reading of its hierarchy: taxonomy questions from specialization and composition questions from `partOf` where a
release keeps them apart (v0.22+), the partOf hierarchy before. Output is deterministic: the same release always
yields the same rows in the same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from edugraph_pipeline.knowledge.logic import compatibility_pairs, eligibility_pairs, logic_pairs
from edugraph_pipeline.knowledge.pairs import QAPair
from edugraph_pipeline.knowledge.structure import composition_pairs, relation_pairs, taxonomy_pairs, top_level_pairs
from edugraph_pipeline.labels import format_answer
from edugraph_pipeline.ontology.model import Ontology

QUESTION_KINDS: tuple[str, ...] = (
    "definition_to_label",  # upstream: a definition -> the concept it defines
    "parent",  # upstream: the taxonomy parent (specialization; partOf before v0.22)
    "children",  # upstream: the taxonomy children
    "label_to_definition",  # reverse of the first: what a concept means
    "dimension",  # which dimension a concept name belongs to
    "ancestors",  # the full chain up the taxonomy, where it is deeper than one level
    "relation",  # expands / inverts / integrates / translates, with what the schema entails
    "top_level",  # the roots of each dimension's structure
    "part_of",  # composition: the wholes a concept is part of (v0.22+)
    "parts",  # composition: a concept's constituent parts (v0.22+)
    "examples",  # the rdfs:comment examples upstream keeps apart from the definition (v0.22+)
    "eligibility",  # whether a concept is a valid direct label or organizational (v0.22+)
    "logic",  # implies / contradicts, and the implication closure
    "incompatible",  # the concepts that can never apply together with one (closure, then contradiction)
    "compatibility",  # whether two logically linked concepts can describe the same content, and why
)
# Kinds whose answer is label JSON (`{"Area": [...], ...}`); the others answer in prose.
LABEL_ANSWER_KINDS: frozenset[str] = frozenset(
    {"definition_to_label", "parent", "children", "dimension", "ancestors", "relation", "top_level", "part_of",
     "parts", "logic", "incompatible"}
)
EXAMPLES_QUESTION = "What are examples of the EduGraph concept '{}'?"


def generate_pairs(ontology: Ontology) -> list[QAPair]:
    pairs = list(_definition_pairs(ontology))
    for concept in ontology:
        name = concept.name
        pairs.extend(taxonomy_pairs(ontology, concept))
        if concept.definition:
            pairs.append(
                QAPair("label_to_definition", name, f"What does the EduGraph concept '{name}' mean?", concept.definition)
            )
        pairs.append(
            QAPair(
                "dimension",
                name,
                f"Which EduGraph dimension (Area, Scope or Ability) does the concept '{name}' belong to?",
                format_answer({concept.dimension: [name]}),
            )
        )
        pairs.extend(relation_pairs(ontology, concept))
        pairs.extend(composition_pairs(ontology, concept))
        if concept.examples:
            pairs.append(QAPair("examples", name, EXAMPLES_QUESTION.format(name), concept.examples))
        pairs.extend(eligibility_pairs(ontology, concept))
        pairs.extend(logic_pairs(ontology, concept))
    pairs.extend(top_level_pairs(ontology))
    pairs.extend(compatibility_pairs(ontology))
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


def count_by_kind(pairs: list[QAPair]) -> dict[str, int]:
    counts = {kind: 0 for kind in QUESTION_KINDS}
    for pair in pairs:
        counts[pair.kind] += 1
    return counts


__all__ = ["LABEL_ANSWER_KINDS", "QUESTION_KINDS", "QAPair", "count_by_kind", "generate_pairs"]
