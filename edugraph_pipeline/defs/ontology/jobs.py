"""The job `ontology_release_sensor` launches for each new release tag."""

import dagster as dg

from edugraph_pipeline.storage import layout

ontology_release_job = dg.define_asset_job(
    "ontology_release_job",
    selection=dg.AssetSelection.assets(layout.ONTOLOGY_RELEASE, layout.KNOWLEDGE_DATASET),
    description="Read one ontology release and build its knowledge dataset.",
)
