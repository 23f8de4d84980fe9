"""Metrics, baseline and gate on hand-made predictions with hand-computed numbers."""

from __future__ import annotations

import json

import pytest

from edugraph_pipeline.evaluation.gate import GATE_PROFILES, GateThresholds, evaluate_gate, gate_checks, gate_thresholds
from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer
from edugraph_pipeline.evaluation.report import EvaluationReport
from edugraph_pipeline_tests.evaluation.helpers import UNSUPPORTED, answer

X = answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"])

# (expected, model text): see the numbers worked out in the tests below
CASES = [
    # 1 exact, strict JSON
    (X, X),
    # 2 wrong Area, extra Ability, in a code fence (repaired)
    (
        answer(["Subtraction"], ["NumbersSmaller100"], ["ProcedureExecution"]),
        '```json\n{"Area": ["Addition"], "Scope": ["NumbersSmaller100"], '
        '"Ability": ["ProcedureExecution", "ErrorDetection"]}\n```',
    ),
    # 3 one Area missing; a lower-case name (remapped) and an unknown one
    (
        answer(["Addition", "Subtraction"], ["NumbersSmaller10"], ["ErrorDetection"]),
        '{"Area": ["addition", "Foo"], "Scope": ["NumbersSmaller10"], "Ability": ["ErrorDetection"]}',
    ),
    # 4 correct refusal
    (UNSUPPORTED, UNSUPPORTED),
    # 5 missed refusal
    (UNSUPPORTED, answer(["Addition"])),
    # 6 false refusal
    (X, UNSUPPORTED),
]
TRAIN = [X, X, answer(["Subtraction"], ["Coins"], []), UNSUPPORTED]


@pytest.fixture(scope="module")
def report(ontology) -> EvaluationReport:
    expected, raw = zip(*CASES)
    return evaluate_predictions(expected, raw, ontology, baseline_answer=most_frequent_answer(TRAIN))


def test_counts_and_validity(report):
    assert (report.n, report.n_worksheets, report.n_unsupported) == (6, 4, 2)
    assert report.json_valid_rate == pytest.approx(5 / 6)  # only the fenced answer needs repair
    assert report.parseable_rate == 1.0
    assert report.repaired_rate == pytest.approx(1 / 6)
    assert report.labels_valid_rate == pytest.approx(5 / 6)  # case 3: "addition" remapped, "Foo" unknown
    assert report.clean_rate == pytest.approx(4 / 6)
    assert report.unknown_labels == {"Foo": 1}
    assert report.remapped_labels == {"addition -> Addition": 1}
    assert report.moved_labels == 0


def test_exact_match_and_refusals(report):
    assert report.exact_match == pytest.approx(2 / 6)
    assert report.exact_match_worksheets == pytest.approx(1 / 4)
    assert report.refusal_accuracy == pytest.approx(1 / 2)
    assert report.false_refusal_rate == pytest.approx(1 / 4)
    assert report.refusal_precision == pytest.approx(1 / 2)
    assert report.refusal_confusion == {
        "worksheet": {"labels": 3, "refusal": 1},
        "unsupported": {"labels": 1, "refusal": 1},
    }


def test_area_scores(report):
    # worksheets 1,2,3,6: Addition tp 2 fp 1 fn 1; Subtraction tp 0 fp 0 fn 2
    area = report.dimensions["Area"]
    assert area.micro_precision == pytest.approx(2 / 3)
    assert area.micro_recall == pytest.approx(2 / 5)
    assert area.micro_f1 == pytest.approx(0.5)
    assert area.macro_precision == pytest.approx(1 / 3)
    assert area.macro_recall == pytest.approx(1 / 3)
    assert area.macro_f1 == pytest.approx(1 / 3)
    assert area.set_accuracy == pytest.approx(1 / 4)
    assert area.n_labels == 2
    by_label = {s.label: s for s in report.per_label if s.dimension == "Area"}
    addition = by_label["Addition"]
    assert (addition.support, addition.predicted, addition.tp, addition.fp, addition.fn) == (3, 3, 2, 1, 1)
    assert addition.f1 == pytest.approx(2 / 3)
    subtraction = by_label["Subtraction"]
    assert (subtraction.support, subtraction.predicted, subtraction.fn, subtraction.f1) == (2, 0, 2, 0.0)


def test_scope_and_ability_scores(report):
    scope = report.dimensions["Scope"]  # tp 3 fp 0 fn 1
    assert (scope.micro_precision, scope.micro_recall) == (1.0, 0.75)
    assert scope.micro_f1 == pytest.approx(6 / 7)
    assert scope.macro_recall == pytest.approx(5 / 6)
    assert scope.macro_f1 == pytest.approx(0.9)  # (0.8 + 1) / 2
    assert scope.set_accuracy == pytest.approx(3 / 4)
    ability = report.dimensions["Ability"]  # tp 3 fp 1 fn 1
    assert ability.micro_f1 == pytest.approx(0.75)
    assert ability.macro_precision == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert ability.macro_f1 == pytest.approx(11 / 15)  # (0.8 + 2/3) / 2
    assert ability.set_accuracy == pytest.approx(2 / 4)
    assert report.micro_f1_mean == pytest.approx((0.5 + 6 / 7 + 0.75) / 3)


def test_confusion_of_label_sets(report):
    area = report.confusion["Area"]
    assert area.labels == ["Addition", "Addition+Subtraction", "Subtraction", "(other)"]
    assert area.matrix == [[1, 0, 0, 1], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    scope = report.confusion["Scope"]
    assert scope.labels == ["NumbersSmaller10", "NumbersSmaller100", "(other)"]
    assert scope.matrix == [[2, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_confusion_keeps_only_the_top_sets(ontology):
    expected = [answer(["Addition"])] * 3 + [answer(["Subtraction"])] * 2 + [answer(["IntegerAddition"])]
    raw = [answer(["Addition"])] * 3 + [answer(["Subtraction"])] * 2 + [answer(["IntegerAddition"])]
    confusion = evaluate_predictions(expected, raw, ontology, confusion_top=2).confusion["Area"]
    assert confusion.labels == ["Addition", "Subtraction", "(other)"]
    assert confusion.matrix == [[3, 0, 0], [0, 2, 0], [0, 0, 1]]


def test_most_frequent_answer_and_baseline(report):
    assert most_frequent_answer(TRAIN) == X
    assert most_frequent_answer([UNSUPPORTED, X]) == min(X, UNSUPPORTED)  # ties: smallest string
    with pytest.raises(ValueError):
        most_frequent_answer([])
    base = report.baseline
    assert report.baseline_answer == X
    assert base.exact_match == pytest.approx(2 / 6)  # items 1 and 6
    assert base.json_valid_rate == 1.0 and base.labels_valid_rate == 1.0
    assert (base.refusal_accuracy, base.false_refusal_rate) == (0.0, 0.0)
    assert base.dimensions["Area"].micro_f1 == pytest.approx(2 / 3)  # tp 3 fp 1 fn 2
    assert base.dimensions["Scope"].micro_f1 == pytest.approx(0.75)
    assert base.dimensions["Ability"].micro_f1 == pytest.approx(0.75)
    assert base.micro_f1_mean == pytest.approx((2 / 3 + 0.75 + 0.75) / 3)
    assert base.baseline is None


def test_report_is_json_serialisable_and_round_trips(report):
    data = json.loads(json.dumps(report.to_json()))
    assert data["micro_f1_mean"] == pytest.approx(report.micro_f1_mean)
    again = EvaluationReport.from_json(data)
    assert again.summary() == report.summary()
    summary = report.summary()
    assert summary["baseline_exact_match"] == pytest.approx(2 / 6)
    assert summary["area_micro_f1"] == pytest.approx(0.5)
    assert all(isinstance(v, (int, float, type(None))) for v in summary.values())


def test_mismatched_lengths_fail(ontology):
    with pytest.raises(ValueError, match="2 expected answers but 1"):
        evaluate_predictions([X, X], [X], ontology)


def test_no_unsupported_items_leaves_refusal_metrics_unset(ontology):
    report = evaluate_predictions([X], [X], ontology)
    assert report.refusal_accuracy is None and report.false_refusal_rate == 0.0
    assert report.refusal_precision is None


# ---- the gate ---------------------------------------------------------------------------------------------------


def perfect(ontology) -> EvaluationReport:
    expected = [case[0] for case in CASES]
    return evaluate_predictions(expected, expected, ontology, baseline_answer=most_frequent_answer(TRAIN))


def test_gate_passes_a_perfect_model(ontology):
    passed, reasons = evaluate_gate(perfect(ontology))
    assert passed and reasons == []
    checks = gate_checks(perfect(ontology), GATE_PROFILES["production"])
    margin = next(c for c in checks if c["check"] == "micro_f1_mean - most_frequent baseline")
    assert margin["value"] == pytest.approx(1 - (2 / 3 + 0.75 + 0.75) / 3)


def test_gate_fails_with_reasons(report):
    passed, reasons = evaluate_gate(report, "production")
    assert not passed
    text = "\n".join(reasons)
    for check in (
        "json_valid_rate = 0.8333, needs >= 0.9500",
        "labels_valid_rate",
        "Area.macro_f1 = 0.3333, needs >= 0.5000",
        "Area.micro_f1 = 0.5000, needs >= 0.6000",
        "refusal_accuracy = 0.5000",
        "false_refusal_rate = 0.2500, needs <= 0.0500",
        "micro_f1_mean - most_frequent baseline",
    ):
        assert check in text
    assert not any(r.startswith("exact_match") for r in reasons)  # 0.333 >= 0.30 passes
    assert not any(r.startswith("Scope.macro_f1") for r in reasons)  # 0.9 passes


def test_tiny_profile_and_overrides(report):
    passed, reasons = evaluate_gate(report, "tiny")
    # json 0.83 and labels 0.83 pass 0.8; the model is below the baseline's mean micro F1
    assert not passed
    assert len(reasons) == 1 and reasons[0].startswith("micro_f1_mean - most_frequent baseline")
    assert evaluate_gate(report, gate_thresholds("tiny", {"min_baseline_margin": None})) == (True, [])
    assert evaluate_gate(report, {"min_baseline_margin": -0.1, "min_json_valid_rate": 0.8})[0] is False
    with pytest.raises(ValueError, match="unknown gate threshold"):
        gate_thresholds("tiny", {"min_f1": 0.3})
    with pytest.raises(ValueError, match="unknown gate profile"):
        evaluate_gate(report, "huge")


def test_gate_without_baseline_or_items(ontology):
    report = evaluate_predictions([X], [X], ontology)
    passed, reasons = evaluate_gate(report, GateThresholds())
    assert not passed and reasons == ["beats_baseline: the report has no baseline"]
    empty = evaluate_predictions([], [], ontology, baseline_answer=X)
    passed, reasons = evaluate_gate(empty, gate_thresholds("tiny"))
    assert not passed and reasons[0].startswith("items: 0 evaluated")


def test_thresholds_round_trip():
    thresholds = gate_thresholds("production")
    assert GateThresholds.from_json(json.loads(json.dumps(thresholds.to_json()))) == thresholds


def with_nearest_neighbour(report: EvaluationReport, ontology, predictions) -> EvaluationReport:
    expected = [case[0] for case in CASES]
    return report.with_baselines({
        "most_frequent": report.baseline,
        "nearest_neighbour": evaluate_predictions(expected, predictions, ontology),
    })


def test_production_margin_is_taken_against_the_strongest_baseline(ontology):
    expected = [case[0] for case in CASES]
    # A model as good as the case texts (mean micro-F1 (0.5 + 0.9 + 0.833) / 3 ~ 0.744 before repair scores) and
    # a nearest neighbour that is right on every item: the margin is against the neighbour, and negative.
    model = evaluate_predictions(expected, [case[1] for case in CASES], ontology,
                                 baseline_answer=most_frequent_answer(TRAIN))
    report = with_nearest_neighbour(model, ontology, expected)
    checks = gate_checks(report, GATE_PROFILES["production"])
    [margin] = [c for c in checks if c["check"].startswith("micro_f1_mean - ")]
    assert margin["check"] == "micro_f1_mean - nearest_neighbour baseline" and margin["baseline"] == "nearest_neighbour"
    assert margin["value"] == pytest.approx(model.micro_f1_mean - 1.0) and not margin["passed"]
    # The tiny (smoke) gate keeps its margin against the most frequent answer, whatever else was measured.
    [tiny] = [c for c in gate_checks(report, GATE_PROFILES["tiny"]) if c["check"].startswith("micro_f1_mean - ")]
    assert tiny["baseline"] == "most_frequent"
    assert tiny["value"] == pytest.approx(model.micro_f1_mean - model.baseline.micro_f1_mean)
    # A weaker neighbour (always the most frequent answer's mistakes and worse) leaves the most frequent strongest.
    weak = with_nearest_neighbour(model, ontology, [UNSUPPORTED] * len(CASES))
    [margin] = [c for c in gate_checks(weak, GATE_PROFILES["production"]) if c["check"].startswith("micro_f1_mean")]
    assert margin["baseline"] == "most_frequent"
    with pytest.raises(ValueError, match="'knn' is not in the report"):
        gate_checks(report, GateThresholds(margin_baseline="knn"))


def test_baselines_round_trip_and_summary(ontology):
    expected = [case[0] for case in CASES]
    report = with_nearest_neighbour(perfect(ontology), ontology, expected)
    again = EvaluationReport.from_json(json.loads(json.dumps(report.to_json())))
    assert set(again.baselines) == {"most_frequent", "nearest_neighbour"}
    assert again.summary() == report.summary()
    summary = report.summary()
    assert summary["baseline_nearest_neighbour_micro_f1_mean"] == 1.0
    assert summary["baseline_nearest_neighbour_exact_match"] == 1.0
    assert summary["baseline_most_frequent_area_micro_f1"] == pytest.approx(report.baseline.dimensions["Area"].micro_f1)
