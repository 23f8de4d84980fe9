"""The model a service answers with: a loaded classifier (either backend) plus what the answers report about it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edugraph_pipeline.storage import folder_sha256


def model_revision(folder: str | os.PathLike) -> str:
    """The content hash of the model folder (`storage.folder_sha256`): the same value `merged_model` records as
    its data version and `model_evaluation` as the model it evaluated, wherever the folder is copied or mounted."""
    return folder_sha256(Path(folder))


@dataclass
class ServedModel:
    classifier: Any  # `Classifier` or `GgufClassifier`: both have `classify(images, batch_size, errors)`
    backend: str
    folder: Path
    revision: str

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
        }


def open_model(
    backend: str = "transformers",
    model: str | os.PathLike | None = None,
    ontology: str | os.PathLike | None = None,
    device: str | None = None,
    max_new_tokens: int | None = None,
) -> ServedModel:
    """Load the classifier as `edugraph classify` does (same defaults, same errors) and hash its folder."""
    from edugraph_pipeline.gguf.classify import latest_gguf_folder
    from edugraph_pipeline.inference.cli import latest_model_folder, load_classifier

    if model is None:
        model = latest_gguf_folder() if backend == "gguf" else latest_model_folder()
    folder = Path(model)
    classifier = load_classifier(backend, folder, ontology, device, max_new_tokens)
    return ServedModel(classifier, backend, folder, model_revision(folder))
