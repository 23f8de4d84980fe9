"""The sample generator: what it draws matches its labels, the views differ, the seed reproduces bytes."""

import io

import pytest
from PIL import Image

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.worksheets.content_sources import sample_release
from edugraph_pipeline.worksheets.sample_generator import KINDS, generate_problems, kind_availability, problem_items
from edugraph_pipeline.worksheets.unsupported import available_photos, unsupported_items
from edugraph_pipeline.worksheets.vocabulary import MissingConcepts, number_limit_for
from edugraph_pipeline_tests.worksheets.worksheet_helpers import load_release


def drawn_numbers(problem) -> list[int]:
    facts = problem.facts
    for key in ("counts", "numbers", "lengths_cm"):
        if key in facts:
            return list(facts[key])
    if "pairs" in facts:
        return [n for pair in facts["pairs"] for n in pair]
    if "sequences" in facts:
        return [n for sequence in facts["sequences"] for n in sequence]
    return []


@pytest.fixture(scope="module")
def problems(ontology):
    return list(generate_problems(ontology, 40, seed=7))


def test_every_kind_is_generated_with_labels_of_the_release(problems, ontology):
    assert {problem.kind for problem in problems} == {kind.name for kind in KINDS}
    for problem in problems:
        assert problem.labels and all(label in ontology for label in problem.labels)
        dimensions = {ontology.concepts[label].dimension for label in problem.labels}
        assert dimensions == {"Area", "Scope", "Ability"}, (problem.kind, problem.labels)


def test_number_scope_matches_the_drawn_numbers(problems):
    for problem in problems:
        numbers = drawn_numbers(problem)
        scopes = [label for label in problem.labels if label.startswith("NumbersSmaller")]
        if not numbers:
            assert problem.kind == "clock" and not scopes
            continue
        # The tightest scope that holds every drawn number, and exactly one of them.
        assert scopes == [f"NumbersSmaller{number_limit_for(max(numbers))}"], (problem.kind, numbers, scopes)


def test_kind_specific_labels(problems):
    by_kind = {problem.kind: problem for problem in problems}
    assert {"Addition", "ProcedureExecution"} <= set(by_kind["addition"].labels)
    assert {"Subtraction", "ProcedureExecution"} <= set(by_kind["subtraction"].labels)
    assert {"AdditiveCount", "NumerationWithIntegers"} <= set(by_kind["counting"].labels)
    clock = by_kind["clock"]
    half = any(minute for _, minute in clock.facts["times"])
    assert ("HalfHourIntervals" if half else "HourIntervals") in clock.labels
    assert {"MeasuringTime", "AnalogClock"} <= set(clock.labels)
    ordering = by_kind["ordering"]
    assert ("AscendingOrder" if ordering.facts["ascending"] else "DescendingOrder") in ordering.labels
    for a, b in by_kind["comparison"].facts["pairs"]:
        assert a != b


def test_solution_view_differs_from_question_view(problems):
    for problem in problems:
        assert problem.question.size == problem.solution.size == (480, 640)
        assert problem.question.tobytes() != problem.solution.tobytes()
        question, solution = problem_items(problem)
        assert (question.view, solution.view) == ("question", "solution")
        assert question.problem_id == solution.problem_id


def test_same_seed_same_bytes_other_seed_other_bytes(ontology):
    first = [item.image for p in generate_problems(ontology, 6, seed=3) for item in problem_items(p)]
    again = [item.image for p in generate_problems(ontology, 6, seed=3) for item in problem_items(p)]
    other = [item.image for p in generate_problems(ontology, 6, seed=4) for item in problem_items(p)]
    assert first == again
    assert first != other


def test_configurable_page_size(ontology):
    problem = next(generate_problems(ontology, 1, seed=1, size=(600, 800)))
    assert problem.question.size == (600, 800)


def test_old_releases_use_their_own_concept_names():
    v040 = load_release("v0.4.0")
    problems = list(generate_problems(v040, 30, seed=2, kinds=("addition", "subtraction")))
    labels = {label for problem in problems for label in problem.labels}
    assert "IntegerAddition" in labels and "IntegerSubtraction" in labels
    assert "Addition" not in labels and all(label in v040 for label in labels)


def test_kinds_a_release_cannot_label_are_left_out(ontology):
    without_time = Ontology(
        version="vtest",
        commit="x",
        concepts={name: c for name, c in ontology.concepts.items() if name not in ("MeasuringTime", "AnalogClock")},
    )
    available, unavailable = kind_availability(without_time)
    assert "clock" not in {kind.name for kind in available}
    assert "MeasuringTime" in unavailable["clock"]
    assert all(p.kind != "clock" for p in generate_problems(without_time, 20, seed=1))

    empty = Ontology(version="vempty", commit="x", concepts={})
    with pytest.raises(MissingConcepts, match="vempty can label no worksheet kind"):
        next(generate_problems(empty, 1))


def test_unsupported_material_is_labelled_and_loads_offline():
    assert {"astronaut", "coffee", "chelsea", "rocket"} <= set(available_photos())
    items = list(unsupported_items(12, seed=5))
    assert all(item.view == "unsupported" for item in items)
    assert len({item.kind for item in items}) >= 3
    for item in items:
        assert Image.open(io.BytesIO(item.image)).mode == "RGB"


def test_sample_release_counts(ontology):
    release = sample_release(ontology, 21, seed=1)
    assert len(release.items) == 21
    views = [item.view for item in release.items]
    assert views.count("question") == views.count("solution") == 9
    assert views.count("unsupported") == 3
