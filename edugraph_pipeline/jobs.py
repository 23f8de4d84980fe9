"""Jobs the sensors and schedules launch."""

import dagster as dg

ONTOLOGY_ASSETS = dg.AssetSelection.assets("ontology_release", "knowledge_dataset")

ontology_release_job = dg.define_asset_job(
    "ontology_release_job",
    selection=ONTOLOGY_ASSETS,
    description="Read one ontology release and build its knowledge dataset.",
)
