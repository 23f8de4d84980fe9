"""Markdown tables and PNG pictures of a report."""

from __future__ import annotations

import base64
import re

import pytest

from edugraph_pipeline.evaluation.gate import evaluate_gate
from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer
from edugraph_pipeline.evaluation.render import (
    render_confusion_chart,
    render_f1_chart,
    render_per_label_table,
    render_report_markdown,
    render_summary_table,
)
from edugraph_pipeline_tests.evaluation.test_metrics import CASES, TRAIN

DATA_URI = re.compile(r"^!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)$")


@pytest.fixture(scope="module")
def report(ontology):
    expected, raw = zip(*CASES)
    return evaluate_predictions(expected, raw, ontology, baseline_answer=most_frequent_answer(TRAIN))


def _png(markdown: str) -> bytes:
    match = DATA_URI.match(markdown)
    assert match, markdown[:80]
    return base64.b64decode(match.group(1))


def test_per_label_table(report):
    table = render_per_label_table(report)
    lines = table.splitlines()
    assert lines[0].startswith("| Dimension | Label | Support |")
    assert "| Area | Addition | 3 | 3 | 0.667 | 0.667 | 0.667 |" in lines
    assert len([line for line in lines if line.startswith("| Area |")]) == 2
    limited = render_per_label_table(report, limit=2)
    assert "more label(s)" in limited
    assert "| Scope |" in render_per_label_table(report, dimension="Scope")
    assert "| Area |" not in render_per_label_table(report, dimension="Scope")


def test_summary_table_has_model_and_baseline(report):
    table = render_summary_table(report)
    assert "| exact_match | 0.333 | 0.333 |" in table
    assert "Baseline answer:" in table


def test_pictures_are_png_data_uris(report):
    assert _png(render_f1_chart(report)).startswith(b"\x89PNG")
    assert _png(render_confusion_chart(report, "Area")).startswith(b"\x89PNG")


def test_full_markdown(report):
    text = render_report_markdown(report, evaluate_gate(report))
    assert "## Gate" in text and "**failed**" in text
    assert text.count("data:image/png;base64,") == 4
