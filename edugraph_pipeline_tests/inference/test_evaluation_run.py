"""evaluate_model: a dataset split through the tiny classifier, scored against the train baseline and gated."""

from __future__ import annotations

import json

import datasets

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
    assert any(check["check"] == "micro_f1_mean - most_frequent baseline" for check in run.checks)  # tiny gate
    assert run.passed is (not run.reasons)
    assert any(check["check"] == "json_valid_rate" for check in run.checks)
    json.dumps(run.to_json())
    limited = evaluate_model(classifier, folder, limit=1, thresholds={"min_baseline_margin": None})
    assert limited.report.n == 1
