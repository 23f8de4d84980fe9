"""The model a service answers with: a loaded `Classifier` (either backend) plus what the answers report about it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from edugraph_pipeline.inference.classifier import Classifier
from edugraph_pipeline.storage.layout import model_version


@dataclass
class ServedModel:
    classifier: Classifier
    folder: Path
    revision: str  # `layout.model_version` of `folder`: merged_model's data version, what model_evaluation evaluated
    loaded_at: float = field(default_factory=time.time)

    @property
    def backend(self) -> str:
        return self.classifier.backend.kind

    @property
    def model_id(self) -> str:
        """The id OpenAI-style answers and ``/v1/models`` carry: release and revision, so it names this model."""
        return f"edugraph-{self.ontology_version}-{self.revision[:12]}"

    @property
    def ontology_version(self) -> str:
        return self.classifier.ontology.version

    def classify(self, images: list, batch_size: int) -> list:
        """`ClassifyResult`s of already-decoded images, through the classify path of `edugraph classify`."""
        return self.classifier.classify(images, batch_size=batch_size, errors="raise")

    def describe(self) -> dict:
        return {
            "backend": self.backend,
            "model_revision": self.revision,
            "ontology_version": self.ontology_version,
            "model_folder": self.folder.name,
            "model_id": self.model_id,
        }

    def close(self) -> None:
        self.classifier.close()


def open_model(
    backend: str,
    folder: str | os.PathLike,
    ontology: str | os.PathLike | None = None,
    device: str | None = None,
    max_new_tokens: int | None = None,
) -> ServedModel:
    """Load the classifier of `folder` as `edugraph classify` does (same options, same errors) and hash it."""
    from edugraph_pipeline.inference.loading import load_classifier

    folder = Path(folder)
    return ServedModel(load_classifier(backend, folder, ontology, device, max_new_tokens), folder, model_version(folder))
