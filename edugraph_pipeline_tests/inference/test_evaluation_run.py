"""evaluate_model: a dataset split through the tiny classifier, scored against the train baseline and gated."""

from __future__ import annotations

import json

import datasets
import pytest

from edugraph_pipeline.evaluation.gate import evaluate_gate
from edugraph_pipeline.evaluation.run import evaluate_model
from edugraph_pipeline_tests.evaluation.helpers import UNSUPPORTED, answer


def _dataset(images) -> datasets.DatasetDict:
    features = datasets.Features({"image": datasets.Image(), "labels": datasets.Value("string")})
    worksheet = answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"])
    train = datasets.Dataset.from_dict(
        {"image": images[:3], "labels": [worksheet, worksheet, UNSUPPORTED]}, features=features
    )
    validation = datasets.Dataset.from_dict(
        {"image": images[:3], "labels": [worksheet, answer(["Subtraction"], ["Coins"], []), UNSUPPORTED]},
        features=features,
    )
    return datasets.DatasetDict({"train": train, "validation": validation})


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def test_evaluate_model_on_a_saved_dataset(classifier, images, tmp_path):
    folder = tmp_path / "worksheets"
    _dataset([image.convert("RGB") for image in images]).save_to_disk(str(folder))
    run = evaluate_model(classifier, folder, batch_size=2, thresholds="tiny")
    assert run.report.n == 3 and len(run.raw) == 3
    assert run.report.baseline_answer == answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"])
    assert run.report.baseline.exact_match == 1 / 3
    # The nearest neighbour of each validation picture is the same train picture: right on rows 1 and 3.
    assert set(run.report.baselines) == {"most_frequent", "nearest_neighbour"}
    assert run.report.baselines["nearest_neighbour"].exact_match == 2 / 3
    # The tiny gate's checks, and its verdict on the untrained model: it writes no JSON object as it stands
    # (each text is cut off or malformed) and labels nothing right, so the gate refuses it and says why.
    checks = {check["check"]: check for check in run.checks}
    assert list(checks) == ["items", "json_valid_rate", "labels_valid_rate", "micro_f1_mean - most_frequent baseline"]
    assert checks["json_valid_rate"]["value"] == sum(_is_json_object(text) for text in run.raw) / 3 == 0.0
    margin = run.report.micro_f1_mean - run.report.baselines["most_frequent"].micro_f1_mean
    assert checks["micro_f1_mean - most_frequent baseline"]["value"] == pytest.approx(margin)
    assert margin == pytest.approx(0.0 - 5 / 9)  # baseline: Area 1/2, Scope 1/2, Ability 2/3 on the worksheet rows
    failed = [name for name, check in checks.items() if not check["passed"]]
    assert "json_valid_rate" in failed and "micro_f1_mean - most_frequent baseline" in failed
    assert run.passed is False
    assert run.reasons[0] == "json_valid_rate = 0.0000, needs >= 0.8000"
    assert run.reasons[-1] == f"micro_f1_mean - most_frequent baseline = {margin:.4f}, needs >= 0.0000"
    assert len(run.reasons) == len(failed)
    # The same report under thresholds it meets passes: the verdict comes from the thresholds, not from the run.
    assert evaluate_gate(run.report, {"min_json_valid_rate": 0.0, "min_labels_valid_rate": 0.0, "min_exact_match": None,
                                      "min_macro_f1": None, "min_micro_f1": None, "min_refusal_accuracy": None,
                                      "max_false_refusal_rate": None, "min_baseline_margin": -1.0}) == (True, [])
    json.dumps(run.to_json())
    limited = evaluate_model(classifier, folder, limit=1, thresholds={"min_baseline_margin": None})
    assert limited.report.n == 1
