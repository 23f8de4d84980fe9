"""Questions about what labels may be used and together: logic relations, compatibility, eligibility.

Logic questions teach the release's `implies` / `contradicts` facts, their implication closure, and which concepts
can never apply together (upstream's rule, `ontology.logic`). Eligibility questions exist where the release keeps
composition apart from specialization, because only there are organizational descriptors no direct label.
"""

from __future__ import annotations

from collections.abc import Iterator

from edugraph_pipeline.knowledge.pairs import QAPair, quoted
from edugraph_pipeline.labels import format_answer
from edugraph_pipeline.ontology.model import LOGIC_RELATIONS, Concept, Ontology

CLOSURE_QUESTION = "Which concepts does the concept '{}' imply, directly or through other implications?"
INCOMPATIBLE_QUESTION = "Which concepts can never apply together with the concept '{}'?"
COMPATIBILITY_QUESTION = "Can the concepts '{}' and '{}' describe the same content?"
ELIGIBILITY_QUESTION = "Can the EduGraph concept '{}' be used as a direct label?"


def logic_pairs(ontology: Ontology, concept: Concept) -> Iterator[QAPair]:
    name = concept.name
    for relation in LOGIC_RELATIONS:
        if relation in concept.relations:
            question = f"Which concepts does the concept '{name}' {'imply' if relation == 'implies' else 'contradict'}?"
            yield QAPair("logic", name, question, format_answer(ontology.group_by_dimension(concept.relations[relation])))
    implied = ontology.implied(name)
    if len(implied) > len(concept.relations.get("implies", ())):
        yield QAPair("logic", name, CLOSURE_QUESTION.format(name), format_answer(ontology.group_by_dimension(implied)))
    partners = ontology.incompatible_with(name)
    if partners:
        yield QAPair("incompatible", name, INCOMPATIBLE_QUESTION.format(name), format_answer(ontology.group_by_dimension(partners)))


def compatibility_pairs(ontology: Ontology) -> Iterator[QAPair]:
    """One yes/no question per pair linked by logic: "no" with the reason for every pair that can never apply
    together, "yes" for every pair where one implies the other (and they are compatible)."""
    with_logic = sorted(c.name for c in ontology if any(relation in c.relations for relation in LOGIC_RELATIONS))
    asked: set[tuple[str, str]] = set()
    for name in with_logic:
        for partner in ontology.incompatible_with(name):
            first, second = sorted((name, partner))
            if (first, second) not in asked:
                asked.add((first, second))
                [conflict] = [pair for pair in ontology.incompatible_pairs([first, second]) if pair.second != pair.first]
                question = COMPATIBILITY_QUESTION.format(first, second)
                yield QAPair("compatibility", f"{first},{second}", question, f"No: {conflict.reason}.")
        for implied in ontology.implied(name):
            first, second = sorted((name, implied))
            if (first, second) not in asked and ontology.is_compatible([first, second]):
                asked.add((first, second))
                question = COMPATIBILITY_QUESTION.format(first, second)
                chain = ontology.implication_chain(name, implied)
                via = f" (via {quoted(chain[1:-1])})" if len(chain) > 2 else ""
                answer = f"Yes: '{name}' implies '{implied}'{via}."
                yield QAPair("compatibility", f"{first},{second}", question, answer)


def eligibility_pairs(ontology: Ontology, concept: Concept) -> Iterator[QAPair]:
    if not ontology.has_composition():
        return
    name = concept.name
    if concept.eligible:
        answer = f"Yes: '{name}' is a valid direct label ({concept.dimension})."
    else:
        answer = (
            f"No: '{name}' is organizational: it is composed of its parts ({quoted(concept.has_part)}) "
            "and is not used as a direct label."
        )
    yield QAPair("eligibility", name, ELIGIBILITY_QUESTION.format(name), answer)
