"""Markdown tables and pictures (PNG as ``data:`` URIs inside Markdown) of an `EvaluationReport`."""

from __future__ import annotations

import base64
import io

from edugraph_pipeline.evaluation.report import EvaluationReport
from edugraph_pipeline.ontology.model import DIMENSIONS


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_summary_table(report: EvaluationReport) -> str:
    """Headline metrics, model vs. the most-frequent-answer baseline (Markdown)."""
    base = report.baseline.summary() if report.baseline is not None else {}
    rows = ["| Metric | Model | Baseline |", "| --- | ---: | ---: |"]
    for key, value in report.summary().items():
        if key.startswith("baseline_"):
            continue
        rows.append(f"| {key} | {_fmt(value)} | {_fmt(base.get(key)) if base else '–'} |")
    if report.baseline_answer:
        rows.append(f"\nBaseline answer: `{report.baseline_answer}`")
    return "\n".join(rows)


def render_per_label_table(report: EvaluationReport, dimension: str | None = None, limit: int | None = 60) -> str:
    """Per-label precision/recall/F1 with support (most frequent labels first; Markdown)."""
    scores = [s for s in report.per_label if dimension is None or s.dimension == dimension]
    scores = sorted(scores, key=lambda s: (DIMENSIONS.index(s.dimension), -s.support, s.label))
    shown = scores if limit is None else scores[:limit]
    rows = [
        "| Dimension | Label | Support | Predicted | Precision | Recall | F1 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in shown:
        rows.append(
            f"| {s.dimension} | {_cell(s.label)} | {s.support} | {s.predicted} | {s.precision:.3f} | "
            f"{s.recall:.3f} | {s.f1:.3f} |"
        )
    if len(shown) < len(scores):
        rows.append(f"\n… {len(scores) - len(shown)} more label(s) in the JSON report.")
    return "\n".join(rows)


def render_examples(report: EvaluationReport) -> str:
    rows = ["| Expected | Answer | Raw |", "| --- | --- | --- |"]
    for e in report.examples:
        rows.append(f"| `{_cell(e['expected'])}` | `{_cell(e['answer'])}` | `{_cell(e['raw'][:200])}` |")
    return "\n".join(rows)


def figure_markdown(figure, alt: str) -> str:
    """A matplotlib figure as ``![alt](data:image/png;base64,...)`` (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')})"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def render_f1_chart(report: EvaluationReport) -> str:
    """Bars: micro and macro F1 per dimension, model vs. baseline (Markdown image)."""
    plt = _pyplot()
    series = [("model micro", report, "micro_f1"), ("model macro", report, "macro_f1")]
    if report.baseline is not None:
        series += [("baseline micro", report.baseline, "micro_f1"), ("baseline macro", report.baseline, "macro_f1")]
    figure, axis = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(series)
    for i, (name, source, attr) in enumerate(series):
        values = [getattr(source.dimensions[d], attr) for d in DIMENSIONS]
        axis.bar([x + i * width for x in range(len(DIMENSIONS))], values, width, label=name)
    axis.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(DIMENSIONS))], list(DIMENSIONS))
    axis.set_ylim(0, 1)
    axis.set_ylabel("F1")
    axis.legend(fontsize=7, ncols=2)
    axis.set_title(f"F1 per dimension (exact match {report.exact_match:.2f}, n={report.n})")
    return figure_markdown(figure, "F1 per dimension")


def render_confusion_chart(report: EvaluationReport, dimension: str) -> str:
    """Heat map of the expected vs. predicted label-set confusion of one dimension (Markdown image)."""
    plt = _pyplot()
    confusion = report.confusion[dimension]
    n = len(confusion.labels)
    figure, axis = plt.subplots(figsize=(1.6 + 0.55 * n, 1.2 + 0.5 * n))
    axis.imshow(confusion.matrix, cmap="Blues")
    short = [label if len(label) <= 28 else label[:27] + "…" for label in confusion.labels]
    axis.set_xticks(range(n), short, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(range(n), short, fontsize=7)
    axis.set_xlabel("predicted")
    axis.set_ylabel("expected")
    peak = max((max(row) for row in confusion.matrix), default=0)
    for r, row in enumerate(confusion.matrix):
        for c, value in enumerate(row):
            if value:
                colour = "white" if value > peak / 2 else "black"
                axis.text(c, r, str(value), ha="center", va="center", fontsize=7, color=colour)
    axis.set_title(f"{dimension}: label-set confusion")
    return figure_markdown(figure, f"{dimension} confusion")


def render_report_markdown(report: EvaluationReport, gate: tuple[bool, list[str]] | None = None) -> str:
    """Everything in one Markdown document (summary, gate, charts, per-label table, wrong answers)."""
    parts = ["## Summary", render_summary_table(report)]
    if gate is not None:
        passed, reasons = gate
        parts += ["## Gate", "**passed**" if passed else "**failed**:\n" + "\n".join(f"- {r}" for r in reasons)]
    parts += ["## F1", render_f1_chart(report)]
    parts += ["## Confusion"] + [render_confusion_chart(report, d) for d in DIMENSIONS if report.n_worksheets]
    parts += ["## Per label", render_per_label_table(report)]
    if report.examples:
        parts += ["## Wrong answers (first few)", render_examples(report)]
    return "\n\n".join(parts)
