"""Jobs the sensors and schedules launch."""

import dagster as dg

ONTOLOGY_ASSETS = dg.AssetSelection.assets("ontology_release", "knowledge_dataset")

ontology_release_job = dg.define_asset_job(
    "ontology_release_job",
    selection=ONTOLOGY_ASSETS,
    description="Read one ontology release and build its knowledge dataset.",
)

# Everything bound to one ontology release, from the release to the Hub (base_model, unpartitioned, is built
# once and reused). Training steps carry the GPU tag that dagster.yaml's run queue limits to one at a time.
full_pipeline_job = dg.define_asset_job(
    "full_pipeline_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("base_model"),
    tags={"edugraph/gpu": "training"},
    description="Rebuild one ontology release end to end: datasets, adapters, merged model, evaluation, publication.",
)
