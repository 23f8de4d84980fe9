"""Run a classifier over a worksheet dataset split and score it (what the `model_evaluation` asset calls).

The split is divided into a fixed selection cohort and the final cohort (`cohorts`): the gate and the legacy report
score the final cohort; the upstream-comparable table (`comparable`) is computed for the model and both baselines on
the final cohort, the selection cohort and the whole split. Every example's raw output, the object parsed from it and
the final labels are kept (`examples`), and the wrong ones make the error report (`error_report`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edugraph_pipeline.evaluation.cohorts import FINAL, SELECTION, SELECTION_FRACTION, assign_cohorts
from edugraph_pipeline.evaluation.comparable import ComparableReport, score_comparable, train_pair_counts
from edugraph_pipeline.evaluation.error_report import render_error_report, thumbnail_uri, wrong_examples
from edugraph_pipeline.evaluation.gate import GateThresholds, evaluate_gate, gate_checks, resolve_thresholds
from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer
from edugraph_pipeline.evaluation.report import EvaluationReport
from edugraph_pipeline.inference.answers import parse_answer, parse_expected
from edugraph_pipeline.inference.lenient_json import extract_object

MODEL = "model"
WHOLE_SPLIT = "validation"  # the comparable table's name for every row of the split


@dataclass
class EvaluationRun:
    report: EvaluationReport  # the final cohort's (what the gate scored)
    passed: bool
    reasons: list[str]
    checks: list[dict]
    thresholds: dict
    raw: list[str]  # the model's texts, in split order (every row, both cohorts)
    seconds: float
    split: str
    cohorts: dict = field(default_factory=dict)  # how the split was divided, and each cohort's problems
    comparable: dict[str, dict[str, ComparableReport]] = field(default_factory=dict)  # cohort -> predictor -> scores
    examples: list[dict] = field(default_factory=list)  # per row: raw, parsed and final labels, cohort, verdict
    thumbnails: dict[int, str] = field(default_factory=dict, repr=False)  # wrong rows' pictures, for the report

    def error_report(self, title: str, facts: Mapping[str, str]) -> str:
        """The static HTML page of the wrong examples (`error_report.render_error_report`)."""
        return render_error_report(self.examples, self.thumbnails, title=title, facts=facts)

    def to_json(self) -> dict:
        return {
            "split": self.split,
            "passed": self.passed,
            "reasons": self.reasons,
            "checks": self.checks,
            "thresholds": self.thresholds,
            "seconds": self.seconds,
            "report": self.report.to_json(),
            "cohorts": self.cohorts,
            "comparable": {cohort: {name: scores.to_json() for name, scores in reports.items()}
                           for cohort, reports in self.comparable.items()},
            "examples": self.examples,
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


def _column(rows, name: str, default) -> list:
    return list(rows[name]) if name in rows.column_names else [default(index) for index in range(len(rows))]


def comparable_tables(
    expected: list[str],
    predictions: Mapping[str, list[str]],
    ontology,
    cohorts: Mapping[str, list[int]],
    *,
    views: list[str],
    train_labels,
    eligible: Callable[[str], bool] | None = None,
    compatible: Callable[[list[str]], bool] | None = None,
) -> dict[str, dict[str, ComparableReport]]:
    """cohort -> predictor -> its comparable report, for every non-empty cohort (rows given by index)."""
    counts = train_pair_counts(train_labels)
    tables: dict[str, dict[str, ComparableReport]] = {}
    for cohort, indices in cohorts.items():
        if not indices:
            continue
        tables[cohort] = {
            name: score_comparable(
                [expected[i] for i in indices], [texts[i] for i in indices], ontology,
                views=[views[i] for i in indices], train_counts=counts, eligible=eligible, compatible=compatible,
            )
            for name, texts in predictions.items()
        }
    return tables


def example_records(expected, raw, ontology, *, problem_ids, views, kinds, cohorts, baselines, judged) -> list[dict]:
    """One record per row: what the model said (raw), the object parsed from it, the final (repaired) labels,
    and whether it counts as right (valid and exactly the gold set)."""
    records = []
    for index, (gold, text) in enumerate(zip(expected, raw)):
        parsed_object, _, _ = extract_object(text)
        final = parse_answer(text, ontology)
        records.append({
            "row": index, "problem_id": problem_ids[index], "view": views[index], "kind": kinds[index],
            "cohort": cohorts[index], "gold": parse_expected(gold), "raw": text, "parsed": parsed_object,
            "final": final.answer, **judged[index],
            "baselines": {name: answers[index] for name, answers in baselines.items()},
        })
    return records


def evaluate_model(
    classifier,
    dataset,
    *,
    split: str = "validation",
    batch_size: int = 8,
    limit: int | None = None,
    thresholds: GateThresholds | str | Mapping | None = "production",
    selection_fraction: float = SELECTION_FRACTION,
) -> EvaluationRun:
    """Classify `split` of the worksheet dataset (a `DatasetDict` or its `save_to_disk` folder), score it against
    its ``labels`` and against the baselines built from the train split (most frequent answer, nearest
    neighbour: `baselines.py`), and apply the gate to the final cohort (its margin taken against the strongest
    baseline)."""
    import datasets

    from edugraph_pipeline.evaluation.baselines import baseline_answers

    if isinstance(dataset, (str, os.PathLike)):
        dataset = datasets.load_from_disk(str(dataset))
    if "train" not in dataset or split not in dataset:
        raise ValueError(f"the dataset needs splits 'train' and {split!r}; it has {sorted(dataset)}")
    rows = dataset[split]
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    ontology = classifier.ontology
    expected = list(rows["labels"])
    problem_ids = _column(rows, "problem_id", str)
    views = _column(rows, "view", lambda index: "")
    cohorts = assign_cohorts(problem_ids, selection_fraction)
    final_rows = cohorts.rows(FINAL)
    start = time.perf_counter()
    raw = predict_rows(classifier, rows, batch_size=batch_size)
    seconds = time.perf_counter() - start

    answers = baseline_answers(dataset["train"], rows)
    gold = [expected[i] for i in final_rows]
    report = evaluate_predictions(gold, [raw[i] for i in final_rows], ontology,
                                  baseline_answer=most_frequent_answer(dataset["train"]["labels"]))
    report = report.with_baselines(
        {name: evaluate_predictions(gold, [texts[i] for i in final_rows], ontology) for name, texts in answers.items()}
    )
    resolved = resolve_thresholds(thresholds)
    passed, reasons = evaluate_gate(report, resolved)
    groups = {FINAL: final_rows, SELECTION: cohorts.rows(SELECTION), WHOLE_SPLIT: list(range(len(rows)))}
    comparable = comparable_tables(expected, {MODEL: raw, **answers}, ontology, groups, views=views,
                                   train_labels=dataset["train"]["labels"], eligible=ontology.is_eligible,
                                   compatible=ontology.is_compatible)
    judged = comparable[WHOLE_SPLIT][MODEL].examples if rows else []
    examples = example_records(
        expected, raw, ontology, problem_ids=problem_ids, views=views, kinds=_column(rows, "kind", lambda i: ""),
        cohorts=cohorts.assignment, baselines=answers, judged=judged,
    )
    thumbnails = {example["row"]: thumbnail_uri(rows[example["row"]]["image"]) for example in wrong_examples(examples)}
    return EvaluationRun(
        report=report,
        passed=passed,
        reasons=reasons,
        checks=gate_checks(report, resolved),
        thresholds=resolved.to_json(),
        raw=raw,
        seconds=seconds,
        split=split,
        cohorts=cohorts.to_json(problem_ids),
        comparable=comparable,
        examples=examples,
        thumbnails=thumbnails,
    )
