import json
from collections import Counter

from edugraph_pipeline.knowledge.qa import QUESTION_KINDS, count_by_kind, generate_pairs
from edugraph_pipeline.ontology.model import DIMENSIONS
from edugraph_pipeline_tests.conftest import load_shared_release, requires_shared
from edugraph_pipeline_tests.kit.remotes import release_tags


@requires_shared
def test_v0_21_0_has_upstream_definitions_and_hierarchy_pairs():
    pairs = generate_pairs(load_shared_release("v0.21.0"))
    counts = count_by_kind(pairs)
    # Upstream's generator made exactly the 729 definition rows and nothing else on this release.
    assert counts["definition_to_label"] == 729
    assert counts["parent"] == 708  # every concept with a parent: 729 minus the roots
    assert counts["children"] == 196
    assert counts["top_level"] == 3
    assert sum(counts.values()) == len(pairs) == 4124


@requires_shared
def test_parent_and_children_answers_use_the_label_format():
    pairs = {(pair.kind, pair.concept): pair for pair in generate_pairs(load_shared_release("v0.21.0"))}
    parent = pairs[("parent", "AdditionCountingOn")]
    assert parent.instruction == "What is the parent of the concept 'AdditionCountingOn'?"
    assert json.loads(parent.output) == {"Area": ["IntegerStrategies"], "Scope": [], "Ability": []}
    children = json.loads(pairs[("children", "IntegerStrategies")].output)
    assert "AdditionCountingOn" in children["Area"] and children["Scope"] == children["Ability"] == []
    relation = pairs[("relation", "AdditionCountingOn")]
    assert relation.instruction == "Which concepts does the concept 'AdditionCountingOn' expand?"
    assert json.loads(relation.output)["Area"] == ["Addition", "Increment"]


@requires_shared
def test_definition_answers_name_the_defined_concept_in_its_dimension():
    ontology = load_shared_release("v0.1.0")
    for pair in generate_pairs(ontology):
        if pair.kind == "definition_to_label":
            answer = json.loads(pair.output)
            assert list(answer) == list(DIMENSIONS)
            named = [name for dimension in DIMENSIONS for name in answer[dimension]]
            assert named == pair.concept.split(",")
            assert all(ontology.concepts[name].definition == pair.instruction for name in named)


@requires_shared
def test_every_release_yields_unique_questions_hierarchy_and_known_answers():
    for tag in release_tags():
        ontology = load_shared_release(tag)
        pairs = generate_pairs(ontology)
        counts = count_by_kind(pairs)
        assert counts["parent"] > 0 and counts["children"] > 0, tag
        assert max(Counter(pair.instruction for pair in pairs).values()) == 1, tag
        for pair in pairs:
            if pair.output.startswith("{"):
                answer = json.loads(pair.output)
                assert all(name in ontology for dimension in DIMENSIONS for name in answer[dimension]), (tag, pair)


@requires_shared
def test_generation_is_deterministic_and_rows_are_chat_messages():
    first = [pair.as_row() for pair in generate_pairs(load_shared_release("v0.9.6"))]
    second = [pair.as_row() for pair in generate_pairs(load_shared_release("v0.9.6"))]
    assert first == second
    row = first[0]
    assert row["messages"] == [
        {"role": "user", "content": row["instruction"]},
        {"role": "assistant", "content": row["output"]},
    ]
    assert [row["kind"] for row in first] == sorted((row["kind"] for row in first), key=QUESTION_KINDS.index)
