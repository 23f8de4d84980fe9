"""`gguf_publication`: the GGUF files of the current merged model on the Hub, only once its evaluation gate passed."""

import dagster as dg

from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.publication.outcome import nothing_to_publish, published
from edugraph_pipeline.defs.resources import ArtifactStoreResource, HubPublisher
from edugraph_pipeline.evaluation.gate import passed_evaluation
from edugraph_pipeline.storage import layout
from edugraph_pipeline.storage.layout import current_model_folder, model_version


@dg.asset(
    deps=[dg.AssetKey(layout.GGUF_MODEL), dg.AssetKey(layout.MODEL_EVALUATION)],
    group_name="publication",
    code_version="1",
    kinds={"huggingface", "gguf"},
    output_required=False,
    description="The GGUF files on the Hugging Face Hub (<EDUGRAPH_HF_REPO>-GGUF) with a model card; only when the "
    "merged model's evaluation gate passed and the GGUF files are of the current merged model.",
)
@reported_as_failure
def gguf_publication(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource, hub: HubPublisher):
    from edugraph_pipeline.gguf.convert import MANIFEST
    from edugraph_pipeline.gguf.publish import gguf_repo_id, publish_gguf

    if nothing_to_publish(context, hub.repo_id, layout.GGUF_MODEL):
        return
    store = artifact_store.store()
    folder = store.asset_dir(layout.GGUF_MODEL)
    if not (folder / MANIFEST).is_file():
        raise dg.Failure(f"{folder} holds no GGUF files: materialize gguf_model first")
    gguf = store.lineage(layout.GGUF_MODEL)
    merged = store.lineage(layout.MERGED_MODEL)
    current = model_version(current_model_folder(store))
    if gguf.get("merged_model_version") != current:
        raise dg.Failure(
            f"gguf_model was converted from the merged model of {gguf.get('merged_model_created_at')}, not from the "
            f"current one of {merged.get('created_at')}: materialize gguf_model again"
        )
    tag = merged["ontology_version"]
    passed_evaluation(store, current)
    repo_id = gguf_repo_id(hub.repo_id)
    yield published(
        context,
        repo_id,
        lambda: publish_gguf(
            store.current(layout.GGUF_MODEL), repo_id, hub.token, hub.endpoint, base_repo=hub.repo_id,
            private=hub.is_private,
            commit_message=f"EduGraph labeller GGUF {gguf.get('quant')} for ontology {tag}",
        ),
        quant=gguf.get("quant") or "",
        ontology_version=tag,
    )
