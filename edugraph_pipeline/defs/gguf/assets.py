"""`gguf_model`: the merged model as llama.cpp files (quantized text model + Qwen3-VL mmproj), smoke-tested."""

import hashlib
import json

import dagster as dg

from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.resources import ArtifactStoreResource, HubPublisher
from edugraph_pipeline.evaluation.gate import passed_evaluation
from edugraph_pipeline.storage import layout
from edugraph_pipeline.storage.layout import current_model_folder, model_version, release_of

GGUF_ASSET = layout.GGUF_MODEL


class GgufConfig(dg.Config):
    quant: str = ""  # llama-quantize type; empty: EDUGRAPH_GGUF_QUANT, else Q4_K_M (Q8_0, Q5_K_M, ... too)
    keep_f16: bool = False  # also keep the unquantized F16 text model in the artifact
    smoke: bool = True  # load and run the files (text, image through the binding, llama-mtmd-cli)
    build: bool = False  # build llama.cpp (scripts/build-llama-cpp.sh, ~15 min) when it is missing
    llama_cpp_dir: str = ""  # empty: EDUGRAPH_LLAMA_CPP_DIR, else ~/.cache/edugraph/llama.cpp/<version>


@dg.asset(
    deps=[dg.AssetKey(layout.MERGED_MODEL)],
    group_name="model",
    code_version="1",
    kinds={"gguf"},
    description="The merged model for llama.cpp: the text model converted with llama.cpp's convert_hf_to_gguf.py "
    "and quantized with llama-quantize (Q4_K_M by default), the Qwen3-VL vision projector (mmproj, F16), the bound "
    "ontology and gguf.json (sizes, tensor counts and types, fallbacks); smoke-tested through llama.cpp.",
)
@reported_as_failure
def gguf_model(context: dg.AssetExecutionContext, config: GgufConfig, artifact_store: ArtifactStoreResource):
    from edugraph_pipeline.gguf.build import build
    from edugraph_pipeline.gguf.convert import MANIFEST, export_gguf, normalise_quant, summarise
    from edugraph_pipeline.gguf.smoke import SMOKE_FILE, smoke_test
    from edugraph_pipeline.llama_cpp_build import LlamaCpp, LlamaCppMissing

    store = artifact_store.store()
    source = current_model_folder(store)
    merged = store.lineage(layout.MERGED_MODEL)
    tag = release_of(store, layout.MERGED_MODEL)
    try:
        quant = normalise_quant(config.quant or None)
    except ValueError as error:
        raise dg.Failure(str(error)) from error
    llama = LlamaCpp.locate(config.llama_cpp_dir or None)
    if not llama.available():
        if not config.build:
            raise dg.Failure(str(_missing(llama, LlamaCppMissing)))
        context.log.info(f"building llama.cpp into {llama.root} (about 15 minutes on 2 cores)")
        llama = build(root=str(llama.root))
    lineage = {
        "ontology_version": tag,
        "merged_model_created_at": merged.get("created_at"),
        "merged_model_version": model_version(source),
        "merged_model_info": merged.get("info"),
        "quant": quant,
        "llama_cpp_python": llama.root.name,
        "keep_f16": config.keep_f16,
    }
    with store.publish(GGUF_ASSET, None, lineage) as staging:
        manifest = export_gguf(source, staging, quant, llama=llama, keep_f16=config.keep_f16, log=context.log.info)
        smoke = None
        if config.smoke:
            smoke = smoke_test(staging, llama=llama)
            if not smoke["ok"]:  # raised inside publish(): the previous gguf_model stays what readers get
                failed = [name for name, passed in smoke["checks"].items() if not passed]
                raise dg.Failure(f"the GGUF smoke test failed ({'; '.join(failed)}): {json.dumps(smoke)[:2000]}")
            (staging / SMOKE_FILE).write_text(json.dumps(smoke, indent=2), encoding="utf-8")
        lineage["summary"] = summarise(manifest)
    folder = store.asset_dir(GGUF_ASSET)
    version = hashlib.sha256(json.dumps(lineage, sort_keys=True, default=str).encode()).hexdigest()[:24]
    metadata = {
        "path": dg.MetadataValue.path(str(folder)),
        "manifest": dg.MetadataValue.path(str(folder / MANIFEST)),
        "ontology_version": tag,
        **{key: (dg.MetadataValue.json(value) if isinstance(value, dict) else value)
           for key, value in summarise(manifest).items()},
        "fallbacks": dg.MetadataValue.json(manifest["quantization"]["fallbacks"]),
        "timings": dg.MetadataValue.json(manifest["timings"]),
        "llama_cpp": dg.MetadataValue.json(manifest["llama_cpp"]),
    }
    if smoke is not None:
        metadata["smoke_text"] = smoke["text"]["completion"]
        metadata["smoke_image_raw"] = smoke["image"]["raw"]
        metadata["smoke_image_seconds"] = smoke["image"]["classify_seconds"]
        metadata["smoke_mtmd_cli"] = bool(smoke.get("mtmd_cli", {}).get("ok"))
        metadata["smoke_checks"] = dg.MetadataValue.json(smoke["checks"])
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(version))


def _missing(llama, error_type):
    try:
        llama.require()
    except error_type as error:
        return f"{error} (or run with config build: true)"
    return "llama.cpp is incomplete"


@dg.asset(
    deps=[dg.AssetKey(GGUF_ASSET), dg.AssetKey("model_evaluation")],
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
    from edugraph_pipeline.publishing import PublicationError

    if not hub.repo_id:
        context.log.warning("EDUGRAPH_HF_REPO is not set: nothing is published")
        return
    store = artifact_store.store()
    folder = store.asset_dir(GGUF_ASSET)
    if not (folder / MANIFEST).is_file():
        raise dg.Failure(f"{folder} holds no GGUF files: materialize gguf_model first")
    gguf = store.lineage(GGUF_ASSET)
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
    try:
        result = publish_gguf(
            store.current(GGUF_ASSET), repo_id, hub.token, hub.endpoint or None, base_repo=hub.repo_id, private=hub.private,
            commit_message=f"EduGraph labeller GGUF {gguf.get('quant')} for ontology {tag}",
        )
    except PublicationError as error:
        raise dg.Failure(f"publishing {repo_id} failed: {error}") from error
    context.log.info(f"{repo_id}: {'new commit' if result.created_commit else 'unchanged'} {result.commit_id}")
    yield dg.MaterializeResult(
        metadata={
            "repo_id": repo_id,
            "url": dg.MetadataValue.url(result.url),
            "commit_id": result.commit_id,
            "created_commit": result.created_commit,
            "files": len(result.files),
            "quant": gguf.get("quant") or "",
            "ontology_version": tag,
        },
        data_version=dg.DataVersion(result.commit_id),
    )
