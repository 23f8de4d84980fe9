"""What `model_evaluation` shows on its page: a scores table and the gate in place, rounded headline numbers, and
the longer tables and pictures (per label, F1 chart, confusion) one click away."""

import dagster as dg

from edugraph_pipeline.charts import INLINE_MARKDOWN_LIMIT
from edugraph_pipeline.evaluation.render import (
    render_confusion_chart,
    render_examples,
    render_f1_chart,
    render_per_label_table,
    render_summary_table,
)
from edugraph_pipeline.evaluation.report import EvaluationReport
from edugraph_pipeline.ontology.model import DIMENSIONS

DIGITS = 3  # what people read: 0.873, not 0.8734939759036144
PER_LABEL_ROWS = 20


def scores_table(report: EvaluationReport) -> str:
    """Micro-F1 per dimension and exact match, the model against each baseline (short enough to show in place)."""
    columns = [("model", report)]
    if report.baseline is not None and "most_frequent" not in report.baselines:
        columns.append(("most frequent", report.baseline))
    columns += [(name.replace("_", " "), baseline) for name, baseline in report.baselines.items()]
    rows = ["| | " + " | ".join(name for name, _ in columns) + " |", "| --- |" + " ---: |" * len(columns)]
    for dimension in DIMENSIONS:
        cells = " | ".join(f"{source.dimensions[dimension].micro_f1:.2f}" for _, source in columns)
        rows.append(f"| {dimension} micro-F1 | {cells} |")
    rows.append("| exact match | " + " | ".join(f"{source.exact_match:.2f}" for _, source in columns) + " |")
    table = "\n".join(rows)
    return table if len(table) < INLINE_MARKDOWN_LIMIT else table[: INLINE_MARKDOWN_LIMIT - 1]


def report_metadata(report: EvaluationReport, gate: tuple[bool, list[str]] | None = None) -> dict:
    """Materialization metadata: the scores and the gate first, headline numbers, then tables and pictures."""
    metadata: dict = {"scores": dg.MetadataValue.md(scores_table(report))}
    if gate is not None:
        metadata["gate_passed"] = dg.MetadataValue.bool(gate[0])
        metadata["gate_reasons"] = dg.MetadataValue.md("\n".join(f"- {r}" for r in gate[1]) or "all checks passed")
    for key, value in report.summary().items():
        if value is None:
            continue
        metadata[key] = (
            dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(round(value, DIGITS))
        )
    metadata["summary"] = dg.MetadataValue.md(render_summary_table(report))
    metadata["per_label"] = dg.MetadataValue.md(render_per_label_table(report, limit=PER_LABEL_ROWS))
    metadata["f1_chart"] = dg.MetadataValue.md(render_f1_chart(report))
    if report.n_worksheets:
        metadata["confusion"] = dg.MetadataValue.md(
            "\n\n".join(render_confusion_chart(report, d) for d in DIMENSIONS)
        )
    if report.examples:
        metadata["wrong_answers"] = dg.MetadataValue.md(render_examples(report))
    return metadata
