"""Publication to the Hugging Face Hub: model cards with full lineage, and idempotent, atomic uploads."""

from edugraph_pipeline.publishing.hub import (
    HubTargets,
    PublicationError,
    PublishResult,
    dataset_card,
    publish_dataset_folder,
    publish_folder,
    scrub,
)
from edugraph_pipeline.publishing.model_card import (
    LINEAGE_FILE,
    AdapterLineage,
    PublicationLineage,
    project_code_version,
    render_model_card,
    write_model_card,
)

__all__ = [
    "LINEAGE_FILE",
    "AdapterLineage",
    "HubTargets",
    "PublicationError",
    "PublicationLineage",
    "PublishResult",
    "dataset_card",
    "project_code_version",
    "publish_dataset_folder",
    "publish_folder",
    "render_model_card",
    "scrub",
    "write_model_card",
]
