"""Answers consistent with the release a model is bound to (issue 22, part 3): decoding, repair and closed response
schemas offer the bound release's eligible labels only, and an incompatible set is never the final answer (the
later label of a conflicting pair is dropped, and the drop is recorded). The rules are those of the exact release
the model ships in its folder: the 2026 ontology (`../shared/ontology-2026`, tagged v0.26.0 as E's tests do) has
organizational descriptors that v0.21.0 still offers as labels."""

from __future__ import annotations

import json
import random

import pytest

from edugraph_pipeline.inference.answers import parse_answer
from edugraph_pipeline.inference.classifier import Classifier
from edugraph_pipeline.inference.constraint import answer_labels, answer_texts
from edugraph_pipeline.inference.contracts import SchemaRefused, closed_schema, format_of_schema
from edugraph_pipeline.ontology.model import DIMENSIONS
from edugraph_pipeline_tests.conftest import load_shared_release, skip_or_fail
from edugraph_pipeline_tests.kit.remotes import SHARED_RELEASES
from edugraph_pipeline_tests.ontology_2026 import load_ontology_2026


@pytest.fixture(scope="module")
def ontology_2026():
    return load_ontology_2026()


@pytest.fixture(scope="module")
def ontology_v21():
    if not (SHARED_RELEASES / "v0.21.0").is_dir():
        skip_or_fail(f"reference data {SHARED_RELEASES} is absent (see ../shared/README.md)")
    return load_shared_release("v0.21.0")


def test_the_vocabulary_is_the_bound_release_s_eligible_labels(ontology_2026, ontology_v21):
    organizational = set(ontology_2026.organizational_labels())
    assert "Arithmetic" in organizational and ontology_2026.concepts["Arithmetic"].dimension == "Area"
    offered = {name for dimension in DIMENSIONS for name in answer_labels(ontology_2026, dimension)}
    assert offered == set(ontology_2026.eligible_labels()) and not offered & organizational
    texts = "\n".join(answer_texts(ontology_2026))
    assert not [name for name in organizational if f'"{name}"' in texts]
    assert all(f'"{name}"' in texts for name in offered)
    # the same name is a label of v0.21.0, which has no composition apart from specialization
    assert "Arithmetic" in answer_labels(ontology_v21, "Area")
    assert len(ontology_v21.eligible_labels()) == len(ontology_v21)


def test_repair_drops_organizational_labels_of_the_bound_release_only(ontology_2026, ontology_v21):
    raw = '{"Area": ["Arithmetic", "PrimeNumbers"], "Scope": [], "Ability": ["ProcedureExecution"]}'
    bound_2026 = parse_answer(raw, ontology_2026)
    assert bound_2026.answer == {"Area": ["PrimeNumbers"], "Scope": [], "Ability": ["ProcedureExecution"]}
    assert bound_2026.ineligible == ["Arithmetic"] and bound_2026.unknown == [] and not bound_2026.clean
    bound_v21 = parse_answer(raw, ontology_v21)
    assert bound_v21.answer["Area"] == ["Arithmetic", "PrimeNumbers"] and bound_v21.ineligible == []
    # a near miss is matched to an eligible label, never turned into an organizational one
    assert parse_answer('{"Area": ["arithmetic"]}', ontology_2026).ineligible == ["Arithmetic"]


@pytest.mark.parametrize("first, second, reason", [
    ("PrimeNumbers", "CompositeNumbers", "'CompositeNumbers' contradicts 'PrimeNumbers'"),
    ("CompositeNumbers", "PrimeNumbers", "'CompositeNumbers' contradicts 'PrimeNumbers'"),
    ("MultiplesOf10", "OddNumbers", "'MultiplesOf10' implies 'EvenNumbers'; 'EvenNumbers' contradicts 'OddNumbers'"),
    ("OddNumbers", "MultiplesOf10", "'MultiplesOf10' implies 'EvenNumbers'; 'EvenNumbers' contradicts 'OddNumbers'"),
])
def test_repair_resolves_an_incompatible_set_by_dropping_the_later_label(ontology_2026, first, second, reason):
    dimension = ontology_2026.concepts[first].dimension
    raw = json.dumps({dimension: [first, "NumbersSmaller10" if dimension == "Area" else "Addition", second]})
    parsed = parse_answer(raw, ontology_2026)
    labels = [name for names in parsed.answer.values() for name in names]
    assert first in labels and second not in labels and len(labels) == 2
    assert parsed.incompatible == {second: f"incompatible with {first}: {reason}"}
    assert ontology_2026.is_compatible(labels) and not parsed.clean


def test_closed_schemas_are_the_bound_release_s(ontology_2026, ontology_v21):
    schema = closed_schema(ontology_2026, "v3")
    assert set(schema["properties"]["areas"]["items"]["enum"]) == set(ontology_2026.eligible_labels("Area"))
    assert format_of_schema(schema, ontology_2026) == "v3"
    with pytest.raises(SchemaRefused, match=r"Arithmetic \(organizational: not a valid direct label\)"):
        format_of_schema(closed_schema(ontology_v21, "v3"), ontology_2026)  # v0.21.0's vocabulary, 2026 model
    with pytest.raises(SchemaRefused, match=r"MeasuringLength \(not a concept\).*another release"):
        format_of_schema(schema, ontology_v21)  # the 2026 vocabulary, a v0.21.0 model


@pytest.fixture(scope="module")
def model_bound_to_2026(tmp_path_factory, ontology_2026):
    """The seeded tiny model in a merged-model folder whose ontology.json is the 2026 release."""
    from edugraph_pipeline.training.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("merged-2026") / "model")
    ontology_2026.save(folder / "ontology.json")
    return folder


def test_constrained_decoding_bound_to_2026_never_answers_organizational_or_incompatible_labels(
    model_bound_to_2026, ontology_2026
):
    """The real classify path on a model folder bound to 2026: its decoding vocabulary is that release's eligible
    labels, and no answer holds an organizational label or an incompatible set. (The seeded tiny model is
    untrained and, under the token mask, rarely completes a label at all; the repair tests above are what fail
    should repair stop dropping such labels.)"""
    from edugraph_pipeline.training.tiny_model import generate_picture

    rng = random.Random(7)
    pictures = [generate_picture(rng, 224)[0] for _ in range(8)]
    organizational = set(ontology_2026.organizational_labels())
    with Classifier.from_folder(model_bound_to_2026, device="cpu", max_new_tokens=48) as classifier:
        assert classifier.ontology.version == "v0.26.0"
        spec_texts = "\n".join(classifier.backend.spec.answer_texts)
        assert not [name for name in organizational if f'"{name}"' in spec_texts]
        assert all(f'"{name}"' in spec_texts for name in ontology_2026.eligible_labels())
        results = classifier.classify(pictures, batch_size=4)
    for result in results:
        labels = [name for names in result.answer.values() for name in names] if "Error" not in result.answer else []
        assert not set(labels) & organizational, result
        assert all(ontology_2026.is_eligible(name) for name in labels), result
        assert ontology_2026.is_compatible(labels), result
        for name in result.ineligible:
            assert name in organizational
