"""What `model_evaluation` shows on its page: a scores table and the gate in place, rounded headline numbers, the
table comparable to upstream's, and the longer tables, pictures (per label, F1 chart, confusion) and the error
report one click away."""

from pathlib import Path

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


CONTENT_FACTS = ("content_version", "content_revision", "content_built_for_ontology_version", "content_label_field")


def content_facts(worksheet_lineage: dict) -> dict:
    """Which content release the evaluated split came from (with the ontology release in `ontology_version`, the
    two versions the lineage shows)."""
    return {key: worksheet_lineage.get(key) for key in CONTENT_FACTS}


def comparable_metadata(run, error_report: Path) -> dict:
    """The table comparable to upstream's for the model and both baselines (final cohort in place, the selection
    cohort and the whole split one click away), the cohorts, and the error report's path and link."""
    from edugraph_pipeline.evaluation.cohorts import FINAL, SELECTION
    from edugraph_pipeline.evaluation.comparable import comparable_table
    from edugraph_pipeline.evaluation.run import MODEL, WHOLE_SPLIT

    metadata: dict = {}
    titles = {FINAL: ("upstream_scores", "final cohort"), SELECTION: ("upstream_scores_selection", "selection cohort"),
              WHOLE_SPLIT: ("upstream_scores_validation", "whole split")}
    for cohort, (key, title) in titles.items():
        if cohort in run.comparable:
            metadata[key] = dg.MetadataValue.md(comparable_table(run.comparable[cohort], title))
    final = run.comparable.get(FINAL, {}).get(MODEL)
    if final is not None:
        metadata["exact_set_match"] = dg.MetadataValue.float(round(final.overall.exact_set_match, DIGITS))
        metadata["micro_label_f1"] = dg.MetadataValue.float(round(final.overall.micro_f1, DIGITS))
        metadata["invalid_output_rate"] = dg.MetadataValue.float(round(final.overall.invalid_output_rate, DIGITS))
    metadata["cohorts"] = dg.MetadataValue.md(
        f"{run.cohorts['note']}\n\n| Cohort | Rows | Problems |\n| --- | ---: | ---: |\n"
        + "\n".join(f"| {c} | {run.cohorts[c]['rows']} | {len(run.cohorts[c]['problems'])} |" for c in (SELECTION, FINAL))
    )
    metadata["wrong_examples"] = sum(not example["exact"] for example in run.examples)
    metadata["error_report"] = dg.MetadataValue.path(str(error_report))
    if error_report.is_absolute():
        metadata["error_report_link"] = dg.MetadataValue.url(error_report.as_uri())
    return metadata
