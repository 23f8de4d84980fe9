"""Scores comparable to upstream's, the cohorts and the error report, on hand-made predictions with numbers worked
out by hand."""

from __future__ import annotations

import pytest

from edugraph_pipeline.charts import INLINE_MARKDOWN_LIMIT
from edugraph_pipeline.evaluation.cohorts import FINAL, MIN_PROBLEMS, SELECTION, assign_cohorts
from edugraph_pipeline.evaluation.comparable import (
    REFUSAL,
    answer_pairs,
    comparable_table,
    frequency_slice,
    score_comparable,
    train_pair_counts,
)
from edugraph_pipeline.evaluation.error_report import group_errors, issues_of, render_error_report
from edugraph_pipeline_tests.evaluation.helpers import UNSUPPORTED, answer, as_dict

X = answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"])
Y = answer(["Subtraction"], ["Coins"], [])
# (gold, model text, view)
CASES = [
    (X, X, "question"),  # exact, valid
    (Y, X, "solution"),  # wrong: 3 extra pairs, 2 missed
    (X, "no answer at all", "question"),  # invalid output: nothing recovered, 3 missed
    (X, '```json\n' + X + '\n```', "solution"),  # right labels, but repair needed: invalid, not an exact match
    (UNSUPPORTED, UNSUPPORTED, "question"),  # the refusal is one pair, matched
]
TRAIN = [X, X, X, X, X, answer(["Addition"], ["Coins"], [])]


@pytest.fixture(scope="module")
def report(ontology):
    gold, raw, views = zip(*CASES)
    return score_comparable(gold, raw, ontology, views=views, train_counts=train_pair_counts(TRAIN))


def test_pairs_and_frequency_slices():
    assert answer_pairs(as_dict(Y)) == {("Area", "Subtraction"), ("Scope", "Coins")}
    assert answer_pairs(as_dict(UNSUPPORTED)) == {REFUSAL}
    counts = train_pair_counts(TRAIN)
    assert counts[("Area", "Addition")] == 6 and counts[("Scope", "Coins")] == 1 and counts[("Area", "Subtraction")] == 0
    assert [frequency_slice(n) for n in (0, 1, 4, 5, 60)] == ["unseen", "1-4", "1-4", "5+", "5+"]


def test_the_overall_scores(report):
    overall = report.overall
    assert overall.n == 5
    # Exact set on valid outputs only: rows 1 and 5; row 4 has the right labels after repair but is invalid.
    assert (overall.exact_set_matches, overall.exact_set_match) == (2, pytest.approx(2 / 5))
    assert overall.invalid_output_rate == pytest.approx(2 / 5)
    # Pairs: tp 3 + 0 + 0 + 3 + 1 = 7; fp 3 (row 2); fn 2 (row 2) + 3 (row 3) = 5.
    assert overall.micro_precision == pytest.approx(7 / 10)
    assert overall.micro_recall == pytest.approx(7 / 12)
    assert overall.micro_f1 == pytest.approx(2 * 7 / (2 * 7 + 3 + 5))
    assert overall.mean_example_f1 == pytest.approx((1 + 0 + 0 + 1 + 1) / 5)
    # Per pair: Addition, NumbersSmaller10, ProcedureExecution each tp 2, fp 1, fn 1 (F1 2/3); Subtraction and
    # Coins 0; the refusal 1.
    assert overall.macro_f1 == pytest.approx((3 * 2 / 3 + 0 + 0 + 1) / 6)
    assert overall.incompatible_set_rate is None  # no compatibility rule given


def test_dimensions_views_and_frequency(report):
    area = report.dimensions["Area"]
    # Area pairs: tp 2 (rows 1, 4), fp 1 (row 2: Addition), fn 2 (row 2: Subtraction, row 3: Addition).
    assert (area.micro_precision, area.micro_recall) == (pytest.approx(2 / 3), pytest.approx(2 / 4))
    assert area.exact_set_match == pytest.approx(2 / 5)  # rows 1 and 5 (no Area label on either side)
    assert area.invalid_output_rate is None
    assert set(report.views) == {"question", "solution"}
    assert report.views["question"].n == 3 and report.views["question"].exact_set_match == pytest.approx(2 / 3)
    assert report.views["solution"].exact_set_match == 0.0
    # Subtraction is unseen in train (fn 1), Coins seen once (fn 1); every other gold pair seen 5+ times.
    assert report.frequency["unseen"].support == 1 and report.frequency["unseen"].recall == 0.0
    assert report.frequency["1-4"].support == 1 and report.frequency["1-4"].predicted == 0
    five = report.frequency["5+"]  # tp 6 (rows 1, 4), fp 3 (row 2), fn 3 (row 3); the refusal is no label
    assert (five.support, five.predicted, five.recall) == (9, 9, pytest.approx(6 / 9))
    assert [e["exact"] for e in report.examples] == [True, False, False, False, True]


def test_eligibility_and_compatibility_rules_when_given(ontology):
    gold, raw, _ = zip(*CASES[:2])
    strict = score_comparable(gold, raw, ontology, eligible=lambda label: label != "NumbersSmaller10",
                              compatible=lambda labels: "ProcedureExecution" not in labels)
    assert strict.overall.invalid_output_rate == 1.0 and strict.overall.exact_set_match == 0.0
    assert strict.overall.incompatible_set_rate == 1.0


def test_the_table_fits_in_place_and_has_every_row(report):
    table = comparable_table({"model": report, "most_frequent": report, "nearest_neighbour": report}, "final cohort")
    lines = table.splitlines()
    assert lines[0] == "| final cohort (n=5) | model | most freq. | 1-NN |"
    assert lines[2] == "| exact set (valid only) | 0.400 | 0.400 | 0.400 |"
    assert "| invalid outputs | 0.400 |" in table and "| incompatible sets | – |" in table
    assert any(line.startswith("| exact question / solution | 0.67 / 0.00 |") for line in lines)
    assert any(line.startswith("| recall unseen / 1-4 / 5+ | 0.00 / 0.00 / 0.67 |") for line in lines)
    assert len(table) < INLINE_MARKDOWN_LIMIT


def test_cohorts_keep_problems_together_and_are_fixed():
    problems = [f"p{i}" for i in range(60)]
    rows = [p for p in problems for _ in ("question", "solution")]
    cohorts = assign_cohorts(rows)
    assert len(cohorts.assignment) == 120
    for index in range(0, 120, 2):
        assert cohorts.assignment[index] == cohorts.assignment[index + 1]
    selected = {rows[i] for i in cohorts.rows(SELECTION)}
    assert 5 <= len(selected) <= 25 and len(selected) + len({rows[i] for i in cohorts.rows(FINAL)}) == 60
    # Adding problems never moves existing ones.
    grown = assign_cohorts(rows + [f"q{i}" for i in range(40)])
    assert grown.assignment[:120] == cohorts.assignment
    small = assign_cohorts(problems[: MIN_PROBLEMS - 1])
    assert set(small.assignment) == {FINAL} and "fewer than 40" in small.note
    record = cohorts.to_json(rows)
    assert record[SELECTION]["rows"] == 2 * len(selected) and record[SELECTION]["problems"] == sorted(selected)


def test_issues_of_a_wrong_answer():
    gold = as_dict(answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"]))
    final = as_dict(answer(["Addition"], ["NumbersSmaller100"], ["ProcedureExecution", "ErrorDetection"]))
    assert issues_of(gold, final, valid=True) == (
        "swapped Scope: NumbersSmaller10 → NumbersSmaller100", "extra Ability: ErrorDetection")
    assert issues_of(gold, as_dict(answer([], ["NumbersSmaller10"], [])), valid=False) == (
        "missed Area: Addition", "missed Ability: ProcedureExecution", "invalid output")
    assert issues_of(gold, as_dict(UNSUPPORTED), valid=True) == ("refused a worksheet",)
    assert issues_of(as_dict(UNSUPPORTED), gold, valid=True) == ("labelled unsupported material",)


def test_the_error_report_groups_wrong_examples_and_escapes_text(report):
    gold, raw, views = zip(*CASES)
    swapped = answer(["Subtraction"], ["NumbersSmaller10"], ["ProcedureExecution"])
    examples = [
        {"row": i, "problem_id": f"p{i}", "view": v, "cohort": FINAL, "gold": as_dict(g), "raw": r,
         "final": as_dict(X if i != 2 else answer()), **report.examples[i]}
        for i, (g, r, v) in enumerate(zip(gold, raw, views))
    ]
    examples.append({"row": 5, "problem_id": "p5", "view": "question", "cohort": SELECTION, "gold": as_dict(swapped),
                     "raw": "<script>alert(1)</script>", "final": as_dict(X), "valid": True, "exact": False})
    examples.append({**examples[-1], "row": 6, "problem_id": "p6"})
    groups = group_errors(examples)
    assert [len(members) for _, members in groups] == [2, 1, 1, 1]
    assert groups[0][0] == ("swapped Area: Subtraction → Addition",)
    page = render_error_report(examples, {5: "data:image/png;base64,AAAA"}, title="Wrong answers",
                               facts={"content release": "v0.21.0-01"})
    assert page.startswith("<!DOCTYPE html>") and "<script>" not in page and "&lt;script&gt;" in page
    assert "5 of 7 validation examples are wrong" in page and "in 4 groups" in page
    assert '<img src="data:image/png;base64,AAAA" alt="row 5">' in page and "v0.21.0-01" in page
    # Rows 2 (nothing recovered) and 3 (fenced: right labels after repair) are invalid outputs.
    assert '<tr><td>invalid output</td><td>2</td><td><a href="#g' in page
    assert page.count('<div class="card">') == 5
