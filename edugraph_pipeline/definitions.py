"""The Dagster code location: every asset, check, job, sensor, schedule and resource under `defs/`.

Loaded lazily: importing this module reads no environment and builds nothing; Dagster (or a test) calls `defs()`.
"""

from pathlib import Path

import dagster as dg

from edugraph_pipeline import settings


@dg.definitions
def defs() -> dg.Definitions:
    settings.load_dotenv()  # a .env in the working directory, for resources that read EnvVars
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
