"""Jobs the sensors and schedules launch."""

import dagster as dg

ONTOLOGY_ASSETS = dg.AssetSelection.assets("ontology_release", "knowledge_dataset")

ontology_release_job = dg.define_asset_job(
    "ontology_release_job",
    selection=ONTOLOGY_ASSETS,
    description="Read one ontology release and build its knowledge dataset.",
)

# Everything from a release to the Hub. base_model is built once and reused; the GGUF export needs a llama.cpp
# build (scripts/build-llama-cpp.sh) and is materialized on its own. The job carries the GPU tag that
# dagster.yaml's run queue limits to one run at a time.
full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("base_model", "gguf_model", "gguf_publication"),
    tags={"edugraph/gpu": "training"},
    description="Rebuild one ontology release end to end: datasets, adapters, merged model, evaluation, publication.",
)
