"""Publication to the Hugging Face Hub: where to publish (`targets`), atomic idempotent uploads (`upload`,
`dataset_upload`) and the cards that go with them (`model_card`, `dataset_card`)."""

from edugraph_pipeline.publishing.dataset_card import dataset_card
from edugraph_pipeline.publishing.dataset_upload import publish_dataset_folder
from edugraph_pipeline.publishing.model_card import (
    LINEAGE_FILE,
    AdapterLineage,
    PublicationLineage,
    project_code_version,
    render_model_card,
    write_model_card,
)
from edugraph_pipeline.publishing.targets import HubTargets
from edugraph_pipeline.publishing.upload import PublicationError, PublishResult, normalise_endpoint, publish_folder

__all__ = [
    "LINEAGE_FILE",
    "AdapterLineage",
    "HubTargets",
    "PublicationError",
    "PublicationLineage",
    "PublishResult",
    "dataset_card",
    "normalise_endpoint",
    "project_code_version",
    "publish_dataset_folder",
    "publish_folder",
    "render_model_card",
    "write_model_card",
]
