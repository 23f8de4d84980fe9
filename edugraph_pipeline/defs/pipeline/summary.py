"""What `edugraph run` prints once the graph is built: where the artifacts are, the evaluation's table, one
classified example, the lineage, the step timings and how to open the UI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from edugraph_pipeline.defs.pipeline.progress import RunTimeline, clock
from edugraph_pipeline.lineage import lineage, render
from edugraph_pipeline.storage import ArtifactStore, layout

PARTITIONED = (layout.ONTOLOGY_RELEASE, layout.KNOWLEDGE_DATASET, layout.WORKSHEET_DATASET)
UI_URL = "http://127.0.0.1:3000"


def artifacts_section(store: ArtifactStore, assets: list[str], tag: str) -> list[str]:
    lines = [f"Artifacts under {store.location}:"]
    width = max(len(asset) for asset in assets)
    for asset in assets:
        folder = store.asset_dir(asset, tag if asset in PARTITIONED else None)
        if folder.exists():
            lines.append(f"  {asset:<{width}}  {folder}")
    return lines


def evaluation_section(store: ArtifactStore) -> list[str]:
    from edugraph_pipeline.evaluation.render import render_summary_table
    from edugraph_pipeline.evaluation.report import EvaluationReport

    record = json.loads(layout.model_evaluation(store).record.read_text(encoding="utf-8"))
    report = EvaluationReport.from_json(record["report"])
    verdict = "passed" if record["passed"] else "failed: " + "; ".join(record["reasons"])
    return [
        f"Evaluation of the merged model on the {record['split']} split ({report.n} rows; "
        f"gate {record['gate_profile']}: {verdict}):",
        render_summary_table(report),
    ]


def example_section(store: ArtifactStore, tag: str) -> list[str]:
    """The merged model on the first validation image, beside the answer it should give."""
    from datasets import load_from_disk

    from edugraph_pipeline.inference.classifier import Classifier, answer_json
    from edugraph_pipeline.inference.loading import quiet_transformers

    quiet_transformers()
    validation = load_from_disk(str(layout.worksheet_dataset(store, tag).dataset))["validation"]
    row = validation[0]
    with Classifier.from_folder(layout.current_model_folder(store)) as classifier:
        [result] = classifier.classify([row["image"].convert("RGB")], batch_size=1)
    return [
        f"One classified example (validation row 0 of worksheet_dataset {tag}: {row['kind']}, {row['view']} view):",
        f"  expected: {row['labels']}",
        f"  model:    {answer_json(result)}",
        "  (your own images: edugraph classify IMAGE.png)",
    ]


def lineage_section(instance: dg.DagsterInstance, timeline: RunTimeline) -> list[str]:
    """The chain behind what this run published, or behind the merged model when it published nothing (what
    `edugraph lineage` shows)."""
    published = timeline.steps.get(layout.HF_PUBLICATION)
    asset = layout.HF_PUBLICATION if published is not None and published.materialized else layout.MERGED_MODEL
    return [f"Lineage of {asset} (edugraph lineage):", render(lineage(instance, asset))]


def timings_section(timeline: RunTimeline) -> list[str]:
    lines = ["Steps:"]
    started = sorted(timeline.steps.values(), key=lambda timing: (timing.started is None, timing.started or 0.0))
    for timing in started:
        took = clock(timing.seconds) if timing.seconds is not None else "-"
        reused = "  reused" if timing.reused else ""
        lines.append(f"  {timing.step:<32} {timing.outcome:<10} {took:>6}{reused}")
    if timeline.seconds is not None:
        lines.append(f"  {'run':<32} {'':<10} {clock(timeline.seconds):>6}")
    return lines


def ui_section(home: Path) -> list[str]:
    return [f"Open the UI (runs, asset graph, lineage): DAGSTER_HOME={home} dagster dev, then {UI_URL}"]


def print_summary(
    write: Callable[[str], None],
    *,
    instance: dg.DagsterInstance,
    home: Path,
    store: ArtifactStore,
    tag: str,
    assets: list[str],
    timeline: RunTimeline,
) -> None:
    for section in (
        artifacts_section(store, assets, tag),
        evaluation_section(store),
        example_section(store, tag),
        lineage_section(instance, timeline),
        timings_section(timeline),
        ui_section(home),
    ):
        write("")
        for line in section:
            write(line)
