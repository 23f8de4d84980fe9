"""A small hand-made ontology and answer builders shared by the evaluation and inference tests."""

from __future__ import annotations

import json

from edugraph_pipeline.labels import format_answer, format_unsupported
from edugraph_pipeline.ontology.model import Concept, Ontology

CONCEPTS = {
    "Area": ("Addition", "Subtraction", "IntegerAddition"),
    "Scope": ("NumbersSmaller10", "NumbersSmaller100", "Coins"),
    "Ability": ("ProcedureExecution", "ErrorDetection"),
}


def small_ontology() -> Ontology:
    concepts = {
        name: Concept(name=name, iri=f"http://edugraph.io/edu#{name}", dimension=dimension)
        for dimension, names in CONCEPTS.items()
        for name in names
    }
    return Ontology(version="v9.9.9", commit="test", concepts=concepts)


def answer(area=(), scope=(), ability=()) -> str:
    return format_answer({"Area": area, "Scope": scope, "Ability": ability})


UNSUPPORTED = format_unsupported()


def as_dict(text: str) -> dict:
    return json.loads(text)
