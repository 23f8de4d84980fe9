import json
from collections import Counter

from edugraph_pipeline.knowledge.qa import LABEL_ANSWER_KINDS, QUESTION_KINDS, count_by_kind, generate_pairs
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
    # Before issue 22: 4,124 rows, 391 of them `relation`. Now the schema's sub-properties add 58 relation rows
    # (translates is a sub-property of integrates, inverts of expands), the 50 implies/contradicts rows move to
    # `logic` (same questions and answers), and logic adds 17 closure, 40 incompatible and 146 compatibility rows.
    assert counts["relation"] == 391 + 58 - 50 == 399
    assert counts["logic"] == 50 + 17
    assert (counts["incompatible"], counts["compatibility"]) == (40, 146)
    # This release reads partOf as its hierarchy: no composition, eligibility or examples questions.
    assert counts["part_of"] == counts["parts"] == counts["eligibility"] == counts["examples"] == 0
    assert sum(counts.values()) == len(pairs) == 4124 + 58 + 17 + 40 + 146 == 4385


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
    definitions = [pair for pair in generate_pairs(ontology) if pair.kind == "definition_to_label"]
    assert len(definitions) == 263  # v0.1.0 defines 263 of its 294 concepts, each definition text once
    for pair in definitions:
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
        labelled = [pair for pair in pairs if pair.kind in LABEL_ANSWER_KINDS]
        # Every concept has at least its dimension question, so the loop below always checks something.
        assert len(labelled) >= len(ontology) + counts["parent"] + counts["children"], tag
        for pair in labelled:
            answer = json.loads(pair.output)
            assert list(answer) == list(DIMENSIONS), (tag, pair)
            assert all(name in ontology for dimension in DIMENSIONS for name in answer[dimension]), (tag, pair)
        prose = [pair for pair in pairs if pair.kind not in LABEL_ANSWER_KINDS]
        assert not any(pair.output.startswith("{") for pair in prose), tag


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


# Per release: (rows, relation rows) made by the code before issue 22, and the rows now. Every difference is in the
# relation and logic kinds: the schema's sub-properties entail more relation facts (translates -> integrates,
# inverts -> expands; v0.6.0 on), the inverse-stated impliedBy/contradictedBy questions of v0.9.0-v0.9.5 fold into
# the forward facts they repeat, implies/contradicts questions move to `logic`, and `logic` adds the implication
# closure, `incompatible` and `compatibility` (v0.5.0 on). v0.1.0-v0.4.0 are unchanged.
ROWS_BEFORE_AND_AFTER_ISSUE_22 = {
    "v0.1.0": (1459, 34, 1459), "v0.1.1": (1459, 34, 1459), "v0.1.2": (1459, 34, 1459), "v0.2.0": (1489, 34, 1489),
    "v0.3.0": (1489, 34, 1489), "v0.3.1": (1489, 34, 1489), "v0.3.2": (1489, 34, 1489), "v0.3.3": (1494, 34, 1494),
    "v0.3.4": (1534, 34, 1534), "v0.3.5": (1573, 34, 1573), "v0.3.6": (1573, 34, 1573), "v0.3.7": (1573, 34, 1573),
    "v0.4.0": (1573, 34, 1573), "v0.5.0": (1581, 42, 1597), "v0.6.0": (2434, 167, 2457), "v0.6.1": (2434, 167, 2457),
    "v0.6.2": (2510, 176, 2538), "v0.7.0": (2534, 181, 2562), "v0.7.1": (2535, 178, 2563),
    "v0.7.2": (2521, 176, 2549), "v0.7.3": (2521, 176, 2549), "v0.8.0": (2769, 180, 2798),
    "v0.9.0": (2864, 240, 2968), "v0.9.1": (2864, 240, 2968), "v0.9.2": (2890, 240, 2994),
    "v0.9.3": (2895, 240, 2999), "v0.9.4": (2895, 240, 2999), "v0.9.5": (2895, 240, 2999),
    "v0.9.6": (2884, 219, 3042), "v0.10.0": (2943, 226, 3120), "v0.11.0": (3107, 248, 3324),
    "v0.11.1": (3118, 249, 3336), "v0.12.0": (3148, 253, 3366), "v0.12.1": (3153, 253, 3371),
    "v0.12.2": (3178, 258, 3402), "v0.13.0": (3299, 271, 3530), "v0.14.0": (3550, 323, 3793),
    "v0.15.0": (3583, 333, 3838), "v0.16.0": (3616, 339, 3872), "v0.16.1": (3622, 340, 3878),
    "v0.16.2": (3638, 341, 3894), "v0.17.0": (3706, 345, 3965), "v0.17.1": (3705, 345, 3964),
    "v0.18.0": (3857, 359, 4119), "v0.19.0": (4043, 386, 4305), "v0.20.0": (4067, 390, 4328),
    "v0.20.1": (4066, 389, 4327), "v0.20.2": (4083, 391, 4344), "v0.20.3": (4088, 391, 4349),
    "v0.20.4": (4093, 391, 4354), "v0.20.5": (4093, 391, 4354), "v0.21.0": (4124, 391, 4385),
}
UNCHANGED_KINDS = ("definition_to_label", "parent", "children", "label_to_definition", "dimension", "ancestors", "top_level")


@requires_shared
def test_old_releases_change_only_in_the_relation_and_logic_kinds():
    assert list(ROWS_BEFORE_AND_AFTER_ISSUE_22) == release_tags()
    for tag, (before, relation_before, after) in ROWS_BEFORE_AND_AFTER_ISSUE_22.items():
        counts = count_by_kind(generate_pairs(load_shared_release(tag)))
        assert sum(counts.values()) == after, tag
        assert sum(counts[kind] for kind in UNCHANGED_KINDS) == before - relation_before, tag
        assert counts["part_of"] == counts["parts"] == counts["examples"] == counts["eligibility"] == 0, tag
