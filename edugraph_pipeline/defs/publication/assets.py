"""Publication to the Hugging Face Hub: the merged model with a lineage model card, and the datasets.

Each asset only materializes when its repository is configured (EDUGRAPH_HF_REPO; the dataset repositories
default to the same namespace), and the model only when its evaluation gate passed. Everything configurable (repos,
endpoint, token, privacy, the code version the card states) comes from the `hub` resource.
"""

import json

import dagster as dg

from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.publication.outcome import nothing_to_publish, published
from edugraph_pipeline.defs.resources import ArtifactStoreResource, HubPublisher
from edugraph_pipeline.evaluation.gate import passed_evaluation
from edugraph_pipeline.publishing import (
    AdapterLineage,
    PublicationLineage,
    project_code_version,
    publish_dataset_folder,
    publish_folder,
    render_model_card,
)
from edugraph_pipeline.publishing.model_card import LINEAGE_FILE as CARD_LINEAGE_FILE
from edugraph_pipeline.storage import ArtifactStore, layout
from edugraph_pipeline.storage.layout import MODEL_VERSION, current_model_folder, model_version, release_of


def card_evaluation(record: dict) -> dict:
    """The model card's evaluation section from `model_evaluation`'s evaluation.json."""

    def scores(report: dict) -> dict:
        return {
            "exact_match": report["exact_match"],
            "json_valid_rate": report["json_valid_rate"],
            "per_dimension": {
                dimension: {"precision": s["micro_precision"], "recall": s["micro_recall"], "f1": s["micro_f1"]}
                for dimension, s in report["dimensions"].items()
            },
        }

    report = record["report"]
    evaluation = {**scores(report), "split": record["split"], "num_examples": report["n"]}
    if report.get("baseline"):
        evaluation["baseline"] = {"name": "most frequent label set", **scores(report["baseline"])}
    return evaluation


def publication_lineage(store: ArtifactStore, tag: str, repo_id: str, hub: HubPublisher) -> PublicationLineage:
    """Everything the model card states about where the model comes from, read from the artifacts' lineage."""
    ontology = store.lineage(layout.ONTOLOGY_RELEASE, tag)
    worksheets = store.lineage(layout.WORKSHEET_DATASET, tag)
    knowledge = store.lineage(layout.KNOWLEDGE_DATASET, tag)
    trained = store.lineage(layout.TRAINED_ADAPTER)
    merged = store.lineage(layout.MERGED_MODEL)
    result = json.loads(layout.adapter(store, layout.TRAINED_ADAPTER).result.read_text(encoding="utf-8"))
    knowledge_adapter = None
    if trained.get("knowledge_adapter"):
        knowledge_adapter = AdapterLineage(
            path="knowledge_adapter/latest", data_version=store.lineage(layout.KNOWLEDGE_ADAPTER).get("data_version"), partition=tag
        )
    return PublicationLineage(
        repo_id=repo_id,
        base_model=str(trained["base_model"]),
        base_model_revision=trained.get("base_model_revision"),
        ontology_release=tag,
        ontology_commit=ontology["source_commit"],
        content_release=worksheets.get("content_source"),
        content_hash=worksheets.get("content_version"),
        knowledge_dataset_fingerprint=knowledge.get("content_sha256"),
        worksheet_dataset_fingerprint=worksheets.get("content_version"),
        knowledge_dataset_repo=hub.knowledge_repo or None,
        worksheet_dataset_repo=hub.worksheets_repo or None,
        knowledge_adapter=knowledge_adapter,
        trained_adapter=AdapterLineage(path="trained_adapter/latest", data_version=trained.get("data_version"), partition=tag),
        merged_model_data_version=merged.get(MODEL_VERSION),
        hyperparameters={"worksheet": result.get("hyperparameters", {})},
        code_version=project_code_version(configured=hub.code_version),
        trained_at=trained.get("created_at"),
    )


@dg.asset(
    deps=[dg.AssetKey(layout.MERGED_MODEL), dg.AssetKey(layout.MODEL_EVALUATION)],
    group_name="publication",
    code_version="1",
    kinds={"huggingface"},
    output_required=False,
    description="The merged model on the Hugging Face Hub (EDUGRAPH_HF_REPO) with a model card stating its full "
    "lineage and evaluation; only published when the evaluation gate passed; republishing unchanged content "
    "creates no commit.",
)
@reported_as_failure
def hf_publication(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource, hub: HubPublisher):
    if nothing_to_publish(context, hub.repo_id, layout.MERGED_MODEL):
        return
    store = artifact_store.store()
    tag = release_of(store, layout.MERGED_MODEL)
    folder = current_model_folder(store)  # one version, hashed and uploaded
    evaluation = passed_evaluation(store, model_version(folder))
    lineage = publication_lineage(store, tag, hub.repo_id, hub)
    card = render_model_card(lineage, card_evaluation(evaluation))
    yield published(
        context,
        hub.repo_id,
        lambda: publish_folder(
            folder,
            hub.repo_id,
            token=hub.token,
            endpoint=hub.endpoint,
            private=hub.is_private,
            commit_message=f"EduGraph labeller for ontology {tag}",
            extra_files={"README.md": card, CARD_LINEAGE_FILE: lineage.to_json()},
        ),
        ontology_version=tag,
        source_commit=lineage.ontology_commit,
        content_version=lineage.content_hash or "",
        model_card=dg.MetadataValue.md(card),
    )


def _publish_dataset(context, store: ArtifactStore, hub: HubPublisher, asset: str, repo_id: str | None, title: str):
    tag = context.partition_key
    if nothing_to_publish(context, repo_id, asset):
        return
    lineage = store.lineage(asset, tag)
    yield published(
        context,
        repo_id,
        lambda: publish_dataset_folder(
            layout.DatasetFiles(store.asset_dir(asset, tag)).dataset,
            repo_id,
            token=hub.token,
            endpoint=hub.endpoint,
            private=hub.is_private,
            commit_message=f"{title} for ontology {tag}",
            pretty_name=title,
            lineage=lineage,
        ),
        ontology_version=tag,
    )


def dataset_publication(dataset: str, repo_field: str, title: str, variable: str, default_repo: str):
    """The asset publishing one partition of `dataset` as a Hub dataset to `HubPublisher.<repo_field>`."""

    @dg.asset(
        name=f"{dataset}_publication",
        partitions_def=ontology_partitions,
        deps=[dg.AssetKey(dataset)],
        group_name="publication",
        code_version="1",
        kinds={"huggingface"},
        output_required=False,
        description=f"The {dataset.replace('_', ' ')} as a Hub dataset ({variable}, default <ns>/{default_repo}).",
    )
    @reported_as_failure
    def publication(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource, hub: HubPublisher):
        yield from _publish_dataset(context, artifact_store.store(), hub, dataset, getattr(hub, repo_field), title)

    return publication


knowledge_dataset_publication = dataset_publication(
    layout.KNOWLEDGE_DATASET, "knowledge_repo", "EduGraph knowledge", "EDUGRAPH_HF_KNOWLEDGE_REPO", "edugraph-knowledge"
)
worksheet_dataset_publication = dataset_publication(
    layout.WORKSHEET_DATASET, "worksheets_repo", "EduGraph worksheets", "EDUGRAPH_HF_WORKSHEETS_REPO",
    "edugraph-worksheets",
)
