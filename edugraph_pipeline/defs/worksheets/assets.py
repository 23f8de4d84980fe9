"""The multimodal worksheet dataset: a content release labelled against one ontology release.

Partitioned like `ontology_release`, so every dataset is bound to exactly one release of the concepts that
label it; the content release comes from the `content_source` resource (and the run tag the content sensor
sets, when it names one release of a series). A `vX.Y.Z-NN` content release is built for ontology release
`vX.Y.Z` and is only ever validated against that partition. A release held to the ingestion contract
(`worksheets.contract`) that breaks it fails with every problem reported, and nothing is published.
"""


import base64
import hashlib
import io
import json
import tempfile

import dagster as dg
import datasets
from PIL import Image
from pydantic import Field

from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.defs.worksheets.sensors import CONTENT_RELEASE_TAG
from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.releases import bound_ontology_version
from edugraph_pipeline.storage import layout
from edugraph_pipeline.storage.layout import DATASET_FOLDER, SUMMARY_FILE, load_ontology
from edugraph_pipeline.worksheets.content_release import ContentSourceError
from edugraph_pipeline.worksheets.contract import ReleaseRejected, contract_problems, enforce, problem_table
from edugraph_pipeline.worksheets.dataset import (
    DatasetSummary,
    build_dataset,
    empty_label_rows,
    split_overlap,
    unknown_labels_in,
)
from edugraph_pipeline.worksheets.hub_source import HubSourceError
from edugraph_pipeline.worksheets.release_series import pinned_revision, release_name

ASSET = layout.WORKSHEET_DATASET
CHECK_LABELS_KNOWN = "labels_exist_in_ontology"
CHECK_NO_EMPTY_LABELS = "no_empty_label_sets"
CHECK_SPLITS_DISJOINT = "splits_disjoint"


def label_count_table(summary: DatasetSummary, top: int = 12) -> str:
    rows = ["| Dimension | Concept | Rows |", "| --- | --- | ---: |"]
    for dimension, counts in summary.label_counts.items():
        for name, count in list(counts.items())[:top]:
            rows.append(f"| {dimension} | {name} | {count} |")
        if len(counts) > top:
            rows.append(f"| {dimension} | … {len(counts) - top} more | |")
    return "\n".join(rows)


def skipped_table(summary: DatasetSummary, limit: int = 25) -> str:
    if not summary.skipped:
        return "Nothing skipped."
    rows = ["| Where | Reason | Detail |", "| --- | --- | --- |"]
    for where, reason, detail in summary.skipped[:limit]:
        rows.append(f"| {where} | {reason} | {detail.replace('|', '/')} |")
    if len(summary.skipped) > limit:
        rows.append(f"| … | {len(summary.skipped) - limit} more | |")
    return "\n".join(rows)


def thumbnails_markdown(split: datasets.Dataset, count: int = 4, width: int = 120) -> str:
    """A few rows as inline PNG thumbnails: one of each view first, so the UI shows what the model sees."""
    picked, views = [], set()
    for index, view in enumerate(split["view"]):
        if view not in views:
            views.add(view)
            picked.append(index)
    picked = (picked + [i for i in range(len(split)) if i not in picked])[:count]
    cells = []
    for index in picked:
        row = split[index]
        image: Image.Image = row["image"].convert("RGB")
        image.thumbnail((width, width * 2))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        encoded = base64.b64encode(buffer.getvalue()).decode()
        cells.append(f"![{row['kind']} {row['view']}](data:image/png;base64,{encoded})\n\n`{row['labels']}`")
    return "\n\n".join(cells) or "No rows."


def binding_refusal(release: str | None, partition: str) -> str | None:
    """Why content release `release` (a tag) cannot be labelled against ontology partition `partition`, or None."""
    bound = bound_ontology_version(release or "")
    if bound is None or bound == partition:
        return None
    return (
        f"content release {release} is built for ontology release {bound}, not {partition}: a release is validated "
        f"against the ontology release it was built for only (materialize partition {bound})"
    )


def dataset_checks(dataset: datasets.DatasetDict, ontology: Ontology) -> list[dg.AssetCheckResult]:
    unknown = unknown_labels_in(dataset, ontology)
    empty = empty_label_rows(dataset)
    overlap = split_overlap(dataset)
    return [
        dg.AssetCheckResult(
            check_name=CHECK_LABELS_KNOWN,
            passed=not unknown,
            metadata={"unknown_or_misplaced": dg.MetadataValue.json(dict(unknown.most_common(50)))},
            description=f"every label is a concept of ontology {ontology.version}, under its own dimension",
        ),
        dg.AssetCheckResult(
            check_name=CHECK_NO_EMPTY_LABELS,
            passed=not empty,
            metadata={"empty_rows": len(empty), "examples": dg.MetadataValue.json(empty[:20])},
        ),
        dg.AssetCheckResult(
            check_name=CHECK_SPLITS_DISJOINT,
            passed=not any(overlap.values()),
            metadata={key: dg.MetadataValue.json(values[:20]) for key, values in overlap.items()},
        ),
    ]


class WorksheetDatasetConfig(dg.Config):
    sample_count: int | None = Field(
        default=None, description="Images generated when the content source is 'sample'. Unset: EDUGRAPH_SAMPLE_COUNT."
    )
    sample_seed: int | None = Field(
        default=None,
        description="Seed of the sample generator and of the train/validation split. Unset: EDUGRAPH_SAMPLE_SEED.",
    )


@dg.asset(
    name=ASSET,
    partitions_def=ontology_partitions,
    deps=[dg.AssetKey(layout.ONTOLOGY_RELEASE)],
    group_name="worksheets",
    code_version="1",
    kinds={"huggingface", "pillow"},
    description="Worksheet images (question and solution views, plus non-math images) with their label answer "
    "JSON, read from the content source and labelled against the partition's ontology release.",
    check_specs=[
        dg.AssetCheckSpec(CHECK_LABELS_KNOWN, asset=ASSET, blocking=True,
                          description="Every label exists in the bound ontology release."),
        dg.AssetCheckSpec(CHECK_NO_EMPTY_LABELS, asset=ASSET, blocking=True,
                          description="No worksheet row has an empty label set."),
        dg.AssetCheckSpec(CHECK_SPLITS_DISJOINT, asset=ASSET, blocking=True,
                          description="No problem or identical image is in both train and validation."),
    ],
)
@reported_as_failure
def worksheet_dataset(
    context: dg.AssetExecutionContext,
    config: WorksheetDatasetConfig,
    artifact_store: ArtifactStoreResource,
    content_source: ContentSource,
) -> dg.MaterializeResult:
    tag = context.partition_key
    sample_count, sample_seed = content_source.sample_settings(config.sample_count, config.sample_seed)
    if sample_count < 1:
        raise dg.Failure(f"config field 'sample_count'={sample_count}: expected at least 1 image")
    try:
        label_field, strict = content_source.rules()
    except (ValueError, ContentSourceError) as error:
        raise dg.Failure(f"content source {content_source.display_source}: {error}") from error
    store = artifact_store.store()
    ontology = load_ontology(store, tag)
    release = context.run.tags.get(CONTENT_RELEASE_TAG) if context.run else None
    try:
        asked_for = release_name(release) if release else pinned_revision(content_source.source)
    except HubSourceError as error:
        raise dg.Failure(f"content source {content_source.display_source}: {error}") from error
    refusal = binding_refusal(asked_for, tag)
    if refusal:
        raise dg.Failure(refusal)
    work_root = store.work_root
    work_root.mkdir(parents=True, exist_ok=True)
    context.log.info(
        f"reading content {content_source.display_source}" + (f" release {release}" if release else "")
        + f" ({'strict' if strict else 'lenient'}, label field {label_field})"
    )
    with tempfile.TemporaryDirectory(dir=work_root, prefix="worksheets-") as scratch:
        try:
            content = content_source.read(
                scratch, ontology, release=release, sample_count=sample_count, sample_seed=sample_seed
            )
        except ContentSourceError as error:
            raise dg.Failure(f"content source {content_source.display_source}: {error}") from error
    refusal = binding_refusal(content.revision, tag)
    if refusal:
        raise dg.Failure(refusal)
    if strict:
        try:
            enforce(content, ontology)
        except ReleaseRejected as error:
            raise dg.Failure(
                description=str(error),
                metadata={
                    "problems": dg.MetadataValue.md(problem_table(error.problems)),
                    "num_problems": len(error.problems),
                    "all_problems": dg.MetadataValue.json([p.to_json() for p in error.problems]),
                },
                allow_retries=False,
            ) from None
        lenient_problems = 0
    else:
        lenient_problems = len(contract_problems(content, ontology))  # skipped and counted, as before
    dataset, summary = build_dataset(
        content.items, ontology, validation_fraction=content_source.validation_fraction,
        seed=sample_seed, skipped=content.skipped, release_splits=content.splits,
    )
    total = sum(summary.rows.values())
    if total == 0:
        raise dg.Failure(
            f"content release {content.source} ({content.version}) has no usable item for ontology {tag}: "
            f"{len(summary.skipped)} skipped ({json.dumps(summary.skipped_reasons)})"
        )
    for where, reason, detail in summary.skipped[:20]:
        context.log.warning(f"skipped {where}: {reason} ({detail})")
    for key, values in summary.split_overlap.items():
        if values:  # kept as the release split them; the splits_disjoint check reports them too
            context.log.warning(f"the release's own splits share {len(values)} {key} values: {values[:5]}")

    bound = bound_ontology_version(content.revision or "")
    lineage = {
        "ontology_version": tag,
        "content_source": content.source,
        "content_version": content.version,
        "content_revision": content.revision,
        "content_built_for_ontology_version": bound,
        "content_format": content.format,
        "content_label_field": content.label_field,
        "content_strict": strict,
        "rows": summary.rows,
        "split_method": summary.split_method,
        "split_seed": sample_seed,
        **({"sample_count": sample_count} if content.format == "sample" else {}),
    }
    with store.publish(ASSET, tag, lineage) as folder:
        dataset.save_to_disk(str(folder / DATASET_FOLDER))
        (folder / SUMMARY_FILE).write_text(json.dumps(summary.to_json(), indent=1), encoding="utf-8")
    path = layout.worksheet_dataset(store, tag).dataset
    # Checks read the dataset back from where training will read it, not the in-memory copy.
    written = datasets.load_from_disk(str(path))

    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "ontology_version": tag,
            "content_source": content.source,
            "content_version": content.version,
            "content_revision": content.revision or "",
            "content_built_for_ontology_version": bound or "",
            "content_format": content.format,
            "content_label_field": content.label_field or "",
            "content_strict": strict,
            "contract_problems_skipped": lenient_problems,
            "split_method": summary.split_method,
            "release_split_overlap": dg.MetadataValue.json(
                {key: values[:20] for key, values in summary.split_overlap.items()}),
            "rows_train": summary.rows["train"],
            "rows_validation": summary.rows["validation"],
            "dagster/row_count": total,
            "views": dg.MetadataValue.json(summary.views),
            "kinds": dg.MetadataValue.json(summary.kinds),
            "label_counts": dg.MetadataValue.md(label_count_table(summary)),
            "unknown_labels": dg.MetadataValue.json(summary.unknown_labels),
            "num_unknown_labels": sum(summary.unknown_labels.values()),
            "organizational_labels": dg.MetadataValue.json(summary.organizational_labels),
            "num_skipped": len(summary.skipped),
            "skipped_reasons": dg.MetadataValue.json(summary.skipped_reasons),
            "skipped_items": dg.MetadataValue.md(skipped_table(summary)),
            "reencoded_images": content.reencoded_images,
            "examples": dg.MetadataValue.md(thumbnails_markdown(written["train"])),
        },
        check_results=dataset_checks(written, ontology),
        data_version=dg.DataVersion(
            hashlib.sha256(
                f"{content.version}|{tag}|{content_source.validation_fraction}|{sample_seed}".encode()
            ).hexdigest()[:16]
        ),
    )
