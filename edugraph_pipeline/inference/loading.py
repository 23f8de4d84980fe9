"""Which model a command loads and loading it: by default the latest `merged_model` (transformers) or `gguf_model`
(llama.cpp) artifact of the data store, resolved to its version, opened as a `Classifier` without library chatter."""

from __future__ import annotations

import os
from pathlib import Path

from edugraph_pipeline.storage import ArtifactStore, layout, open_store


def data_store(root: str | os.PathLike | None = None) -> ArtifactStore:
    """The store at `root`, default ``EDUGRAPH_DATA_DIR`` (``./out``; a gs:// store through its local mirror)."""
    if root is not None:
        return open_store(root)
    from edugraph_pipeline import settings

    return open_store(settings.data_location(), cache_dir=settings.cache_dir())


def latest_model_folder(root: str | os.PathLike | None = None) -> Path:
    """``<root>/merged_model/latest/model``: the model the pipeline published last, resolved to its version."""
    store = data_store(root)
    try:
        folder = layout.merged_model(store, current=True).model
    except FileNotFoundError:
        folder = layout.merged_model(store).model
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no merged model in {layout.merged_model(store).model}: materialize merged_model first, "
            "set EDUGRAPH_DATA_DIR, or pass --model"
        )
    return folder


def latest_gguf_folder(root: str | os.PathLike | None = None) -> Path:
    """``<root>/gguf_model/latest``: the GGUF export the pipeline published last, resolved to its version."""
    from edugraph_pipeline.inference.llama_cpp_backend import MANIFEST

    store = data_store(root)
    try:
        folder = store.current(layout.GGUF_MODEL)
    except FileNotFoundError:
        folder = store.asset_dir(layout.GGUF_MODEL)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(
            f"no GGUF model in {store.asset_dir(layout.GGUF_MODEL)} (no {MANIFEST}): materialize gguf_model first, "
            "set EDUGRAPH_DATA_DIR, or pass the folder"
        )
    return folder


def default_model_folder(backend: str, root: str | os.PathLike | None = None) -> Path:
    """The folder `backend` loads when none is given: the latest `merged_model` or `gguf_model`."""
    return latest_gguf_folder(root) if backend == "gguf" else latest_model_folder(root)


def quiet_transformers() -> None:
    """stderr is for errors about the inputs: no weight-loading progress bars or library chatter."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_classifier(
    backend: str = "transformers",
    model: str | os.PathLike | None = None,
    ontology: str | os.PathLike | None = None,
    device: str | None = None,
    max_new_tokens: int | None = None,
):
    """The `Classifier` of `backend` (``transformers`` or ``gguf``) on `model` (default: the latest artifact).

    Raises `FileNotFoundError` (no artifact) or `ModelFolderError` (unloadable folder, llama.cpp build absent,
    a torch device asked of llama.cpp)."""
    from edugraph_pipeline.inference.classifier import Classifier, ModelFolderError

    options: dict = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    if device is not None:
        if backend != "transformers":
            raise ModelFolderError(f"--device {device}: the {backend} backend runs on the CPU, it takes no device")
        options["device"] = device
    folder = Path(model) if model else default_model_folder(backend)
    return Classifier.from_folder(folder, ontology, backend=backend, **options)
