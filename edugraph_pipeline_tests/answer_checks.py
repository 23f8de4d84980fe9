"""What a test asserts about a classifier's answer, beyond its shape.

`parse_answer` turns any text into a valid-shaped answer (it never raises), so "the answer has the keys Area, Scope
and Ability" holds for any model output, a broken model's included. `assert_model_answer` checks instead that the
model's raw text is what the constrained decoder of the bound release can write (the forced prefix, then only
characters of that release's answers) and that the printed answer is exactly what that release makes of the text:
labels of the release, each under its own dimension, sorted and unique.
"""

from __future__ import annotations

from edugraph_pipeline.inference.answers import parse_answer
from edugraph_pipeline.inference.constraint import ANSWER_PREFIX, answer_texts
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology


def assert_release_answer(answer: dict, ontology: Ontology) -> None:
    """`answer` is the refusal, or names only concepts of `ontology`, each under its dimension, sorted and unique."""
    if answer == UNSUPPORTED_MATERIAL:
        return
    assert list(answer) == list(DIMENSIONS), answer
    for dimension, names in answer.items():
        assert names == sorted(set(names)), (dimension, names)
        for name in names:
            assert name in ontology.concepts, f"{name} is no concept of {ontology.version}"
            assert ontology.concepts[name].dimension == dimension, (name, dimension)


def assert_model_answer(answer: dict, raw: str, ontology: Ontology) -> None:
    """`raw` came from the decoder constrained to `ontology`'s answers, and `answer` is what `ontology` makes of it."""
    assert raw.startswith(ANSWER_PREFIX), raw
    alphabet = set("".join(answer_texts(ontology)))
    foreign = sorted(set(raw) - alphabet)
    assert not foreign, f"{foreign} occur in no answer of {ontology.version}: the vocabulary mask was not applied"
    assert answer == parse_answer(raw, ontology).answer, (answer, raw)
    assert_release_answer(answer, ontology)
