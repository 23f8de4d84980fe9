"""The Dagster code location: every asset, check, job, sensor, schedule and resource of the pipeline."""

import dagster as dg

from edugraph_pipeline import settings
from edugraph_pipeline.assets import gguf, models, ontology, publication, training, worksheets
from edugraph_pipeline.jobs import full_pipeline_job, ontology_release_job
from edugraph_pipeline.resources import default_resources
from edugraph_pipeline.schedules import newest_release_schedule
from edugraph_pipeline.sensors import ontology_release_sensor
from edugraph_pipeline.worksheets.sensors import content_release_sensor

settings.load_dotenv()

PIPELINE_ASSETS = dg.load_assets_from_modules([ontology, worksheets, training, models, publication, gguf])

defs = dg.Definitions(
    assets=PIPELINE_ASSETS,
    jobs=[ontology_release_job, full_pipeline_job],
    sensors=[ontology_release_sensor, content_release_sensor],
    schedules=[newest_release_schedule],
    resources=default_resources(),
)
