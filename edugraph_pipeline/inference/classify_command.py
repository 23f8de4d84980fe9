"""``edugraph classify IMAGE... [--model FOLDER] [--ontology FILE] [--raw] [--batch-size N]``.

Prints one line per usable image, in input order: the upstream answer object (``--raw`` adds the model's text
as ``"raw"``). Unusable files are reported on stderr (``error: FILE: reason``), the others are still classified,
and the exit status is 1. A model that cannot be found or loaded: exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from edugraph_pipeline.inference.classifier import BACKENDS
from edugraph_pipeline.inference.loading import load_classifier, quiet_transformers


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


def run(args: argparse.Namespace) -> int:
    """The command on parsed arguments (what `edugraph_pipeline.cli` dispatches to)."""
    from edugraph_pipeline.inference.classifier import answer_json

    if args.batch_size < 1:
        print("error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    quiet_transformers()
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
