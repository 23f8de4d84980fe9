"""``edugraph classify IMAGE... [--model FOLDER] [--ontology FILE] [--raw] [--batch-size N]``.

Prints one line per usable image, in input order: the upstream answer object (``--raw`` adds the model's text
as ``"raw"``). Unusable files are reported on stderr (``error: FILE: reason``), the others are still classified,
and the exit status is 1. A model that cannot be found or loaded: exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edugraph_pipeline.inference.classifier import BACKENDS
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edugraph classify",
        description="Label worksheet images with EduGraph concepts (one JSON answer per image and line).",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to classify")
    parser.add_argument(
        "--model",
        metavar="FOLDER",
        help="model folder (default: <EDUGRAPH_DATA_DIR>/merged_model/latest/model; with --backend gguf: "
        "<EDUGRAPH_DATA_DIR>/gguf_model/latest)",
    )
    parser.add_argument("--ontology", metavar="FILE", help="normalised ontology JSON (default: FOLDER/ontology.json)")
    parser.add_argument("--raw", action="store_true", help='add the model\'s raw text as field "raw"')
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per generation batch (8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, metavar="N", help="generation bound")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="transformers",
        help="transformers (the merged model) or gguf (llama.cpp on gguf_model's files)",
    )


def _quiet_transformers() -> None:
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


def run(args: argparse.Namespace) -> int:
    """The command on parsed arguments (what `edugraph_pipeline.cli` dispatches to)."""
    from edugraph_pipeline.inference.classifier import answer_json

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    _quiet_transformers()
    try:
        classifier = load_classifier(args.backend, args.model, args.ontology, args.device, args.max_new_tokens)
    except (FileNotFoundError, ValueError) as error:  # ModelFolderError, or an EDUGRAPH_DATA_DIR no store has
        print(f"error: {error}", file=sys.stderr)
        return 2
    with classifier:
        results = classifier.classify(args.images, batch_size=args.batch_size, errors="return")
    status = 0
    for result in results:
        if result.error is not None:
            print(f"error: {result.error}", file=sys.stderr)
            status = 1
            continue
        print(answer_json(result, include_raw=args.raw), flush=True)
    return status


def classify_main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(classify_main())
