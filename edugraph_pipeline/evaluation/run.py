"""Run a classifier over a worksheet dataset split and score it (what the `model_evaluation` asset calls)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from edugraph_pipeline.evaluation.gate import GateThresholds, evaluate_gate, gate_checks, resolve_thresholds
from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer
from edugraph_pipeline.evaluation.report import EvaluationReport


@dataclass
class EvaluationRun:
    report: EvaluationReport
    passed: bool
    reasons: list[str]
    checks: list[dict]
    thresholds: dict
    raw: list[str]  # the model's texts, in split order
    seconds: float
    split: str

    def to_json(self) -> dict:
        return {
            "split": self.split,
            "passed": self.passed,
            "reasons": self.reasons,
            "checks": self.checks,
            "thresholds": self.thresholds,
            "seconds": self.seconds,
            "report": self.report.to_json(),
        }


def predict_rows(classifier, rows, batch_size: int = 8, chunk: int = 64) -> list[str]:
    """The model's raw text for every row's ``image`` (decoded a chunk at a time to bound memory)."""
    raw: list[str] = []
    for start in range(0, len(rows), chunk):
        stop = min(start + chunk, len(rows))
        part = rows.select(range(start, stop)) if hasattr(rows, "select") else rows[start:stop]
        images = [row["image"].convert("RGB") for row in part]
        raw.extend(classifier.generate_raw(images, batch_size=batch_size))
    return raw


def evaluate_model(
    classifier,
    dataset,
    *,
    split: str = "validation",
    batch_size: int = 8,
    limit: int | None = None,
    thresholds: GateThresholds | str | Mapping | None = "production",
) -> EvaluationRun:
    """Classify `split` of the worksheet dataset (a `DatasetDict` or its `save_to_disk` folder), score it against
    its ``labels`` and against the baselines built from the train split (most frequent answer, nearest
    neighbour: `baselines.py`), and apply the gate (its margin taken against the strongest baseline)."""
    import datasets

    from edugraph_pipeline.evaluation.baselines import baselines

    if isinstance(dataset, (str, os.PathLike)):
        dataset = datasets.load_from_disk(str(dataset))
    if "train" not in dataset or split not in dataset:
        raise ValueError(f"the dataset needs splits 'train' and {split!r}; it has {sorted(dataset)}")
    rows = dataset[split]
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    baseline = most_frequent_answer(dataset["train"]["labels"])
    start = time.perf_counter()
    raw = predict_rows(classifier, rows, batch_size=batch_size)
    seconds = time.perf_counter() - start
    report = evaluate_predictions(list(rows["labels"]), raw, classifier.ontology, baseline_answer=baseline)
    report = report.with_baselines(baselines(dataset["train"], rows, classifier.ontology))
    resolved = resolve_thresholds(thresholds)
    passed, reasons = evaluate_gate(report, resolved)
    return EvaluationRun(
        report=report,
        passed=passed,
        reasons=reasons,
        checks=gate_checks(report, resolved),
        thresholds=resolved.to_json(),
        raw=raw,
        seconds=seconds,
        split=split,
    )
