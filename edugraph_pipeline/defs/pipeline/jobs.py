"""The whole-pipeline job that `newest_release_schedule` launches."""

import dagster as dg

from edugraph_pipeline.storage import layout

# Everything from a release to the Hub. base_model is built once and reused; the GGUF export needs a llama.cpp
# build (scripts/build-llama-cpp.sh) and is materialized on its own. The job carries the GPU tag that
# dagster.yaml's run queue limits to one run at a time.
full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets(layout.BASE_MODEL, layout.GGUF_MODEL, layout.GGUF_PUBLICATION),
    tags={"edugraph/gpu": "training"},
    description="Rebuild one ontology release end to end: datasets, adapters, merged model, evaluation, publication.",
)
