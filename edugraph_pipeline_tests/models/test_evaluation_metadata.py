"""`model_evaluation`'s page: the scores table and the gate show in place, numbers are rounded for reading."""

from __future__ import annotations

import dagster as dg
import pytest

from edugraph_pipeline.charts import INLINE_MARKDOWN_LIMIT
from edugraph_pipeline.defs.model.evaluation_metadata import report_metadata
from edugraph_pipeline.evaluation.gate import evaluate_gate
from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer
from edugraph_pipeline_tests.evaluation.conftest import ontology as ontology  # the fixture
from edugraph_pipeline_tests.evaluation.test_metrics import CASES, TRAIN


@pytest.fixture(scope="module")
def report(ontology):
    expected, raw = zip(*CASES)
    return evaluate_predictions(expected, raw, ontology, baseline_answer=most_frequent_answer(TRAIN))


def test_dagster_metadata(report):
    metadata = report_metadata(report, evaluate_gate(report))
    assert metadata["exact_match"] == dg.MetadataValue.float(round(report.exact_match, 3))
    assert metadata["n"] == dg.MetadataValue.int(6)
    assert metadata["gate_passed"] == dg.MetadataValue.bool(False)
    assert "data:image/png;base64," in metadata["f1_chart"].value
    assert "refusal_accuracy" in metadata and "baseline_exact_match" in metadata
    floats = [value.value for value in metadata.values() if isinstance(value, dg.FloatMetadataValue)]
    assert floats and all(value == round(value, 3) for value in floats)


def test_scores_and_gate_show_in_place(report):
    metadata = report_metadata(report, evaluate_gate(report))
    assert list(metadata)[:3] == ["scores", "gate_passed", "gate_reasons"]
    scores = metadata["scores"].value
    assert len(scores) < INLINE_MARKDOWN_LIMIT and len(metadata["gate_reasons"].value) < INLINE_MARKDOWN_LIMIT
    lines = scores.splitlines()
    assert lines[0] == "| | model | most frequent |"
    area = report.dimensions["Area"].micro_f1
    assert f"| Area micro-F1 | {area:.2f} | {report.baseline.dimensions['Area'].micro_f1:.2f} |" in lines
