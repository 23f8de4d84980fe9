"""`gguf_model`: the merged model as llama.cpp files (quantized text model + Qwen3-VL mmproj), smoke-tested."""

import hashlib
import json

import dagster as dg
from pydantic import Field

from edugraph_pipeline import settings
from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.storage import layout
from edugraph_pipeline.storage.layout import current_model_folder, model_version, release_of

GGUF_ASSET = layout.GGUF_MODEL


class GgufConfig(dg.Config):
    """Per-run knobs of `gguf_model`; an empty field takes its setting when the run starts (`settings.chosen`)."""

    quant: str = Field(
        default="",
        description="llama-quantize type (Q4_K_M, Q8_0, Q5_K_M, ...). Empty: EDUGRAPH_GGUF_QUANT (default "
        f"{settings.default('EDUGRAPH_GGUF_QUANT')}).",
    )
    keep_f16: bool = Field(default=False, description="Also keep the unquantized F16 text model in the artifact.")
    smoke: bool = Field(
        default=True, description="Load and run the files (text, image through the binding, llama-mtmd-cli)."
    )
    build: bool = Field(
        default=False, description="Build llama.cpp (scripts/build-llama-cpp.sh, ~15 min) when it is missing."
    )
    llama_cpp_dir: str = Field(
        default="",
        description="The llama.cpp build. Empty: EDUGRAPH_LLAMA_CPP_DIR, else the cache folder of "
        "EDUGRAPH_LLAMA_CPP_VERSION (~/.cache/edugraph/llama.cpp/<version>).",
    )


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
    quant, where = settings.chosen("quant", config.quant, "EDUGRAPH_GGUF_QUANT")
    try:
        quant = normalise_quant(quant)
    except ValueError as error:
        raise dg.Failure(f"{where}: {error}") from error
    llama = LlamaCpp.locate(config.llama_cpp_dir.strip() or None)  # None: the configured build
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
