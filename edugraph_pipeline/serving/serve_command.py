"""``edugraph serve [--model FOLDER | --gguf FOLDER] [--host H] [--port P] ...``: the classifier over HTTP.

The port defaults to ``$PORT`` (what Cloud Run sets), else 8080. The model loads after the server is up (see
`app`); if it cannot be loaded the server stops and the exit status is 2, naming what is missing.
"""

from __future__ import annotations

import argparse
import logging
import sys

from edugraph_pipeline import settings
from edugraph_pipeline.serving.batching import BatchSettings
from edugraph_pipeline.serving.uploads import UploadLimits

DEFAULT_PORT = 8080
LOAD_FAILED = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model", metavar="FOLDER",
        help="merged model folder, transformers backend (default: the latest <EDUGRAPH_DATA_DIR>/merged_model)",
    )
    source.add_argument(
        "--gguf", metavar="FOLDER", nargs="?", const="",
        help="gguf_model folder, llama.cpp backend (without FOLDER: <EDUGRAPH_DATA_DIR>/gguf_model/latest)",
    )
    parser.add_argument("--ontology", metavar="FILE", help="normalised ontology JSON (default: FOLDER/ontology.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1; 0.0.0.0 in the image)")
    parser.add_argument("--port", type=int, default=None, help=f"port (default: $PORT, else {DEFAULT_PORT})")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--max-new-tokens", type=int, default=None, metavar="N", help="generation bound")
    defaults, limits = BatchSettings(), UploadLimits()
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch_images, metavar="N",
                        help=f"images per model batch ({defaults.max_batch_images})")
    parser.add_argument("--batch-window-ms", type=float, default=defaults.window_s * 1000, metavar="MS",
                        help=f"how long a batch waits for more requests ({defaults.window_s * 1000:g} ms)")
    parser.add_argument("--max-files", type=int, default=limits.max_files, metavar="N",
                        help=f"images per request ({limits.max_files})")
    parser.add_argument("--max-request-mb", type=float, default=limits.max_request_bytes / 2**20, metavar="MB",
                        help=f"request body cap ({limits.max_request_bytes / 2**20:g} MiB)")
    parser.add_argument("--max-pixels", type=int, default=limits.max_pixels, metavar="N",
                        help=f"pixel cap per image, checked before decoding ({limits.max_pixels})")
    parser.add_argument("--timeout", type=float, default=limits.request_timeout_s, metavar="S",
                        help=f"per-request timeout: upload and answer ({limits.request_timeout_s:g} s)")


def port_from_environment() -> int:
    """``$PORT`` (what Cloud Run sets), else `DEFAULT_PORT`; anything but a port number is refused, naming it."""
    value = settings.other_tool("PORT").strip()
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"PORT={value!r}: expected a port number (1-65535)")
    return int(value)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from edugraph_pipeline.inference.loading import default_model_folder
    from edugraph_pipeline.inference.loading import quiet_transformers as _quiet_transformers
    from edugraph_pipeline.serving.app import create_app
    from edugraph_pipeline.serving.model import open_model

    try:
        limits = UploadLimits(
            max_files=args.max_files,
            max_request_bytes=int(args.max_request_mb * 2**20),
            max_file_bytes=min(UploadLimits.max_file_bytes, int(args.max_request_mb * 2**20)),
            max_pixels=args.max_pixels,
            request_timeout_s=args.timeout,
        )
        if args.max_batch < 1 or args.batch_window_ms < 0:
            raise ValueError("--max-batch must be at least 1 and --batch-window-ms not negative")
        port = args.port if args.port is not None else port_from_environment()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    backend = "gguf" if args.gguf is not None else "transformers"
    folder = (args.gguf or None) if backend == "gguf" else args.model
    _quiet_transformers()
    failures: list[BaseException] = []

    def stop_on_failure(error: BaseException) -> None:
        failures.append(error)
        server.should_exit = True

    app = create_app(
        # the default folder is resolved in the loader too: a missing model is reported like an unloadable one
        lambda: open_model(
            backend, folder or default_model_folder(backend), args.ontology, args.device, args.max_new_tokens
        ),
        limits=limits,
        batching=BatchSettings(args.max_batch, args.batch_window_ms / 1000),
        on_load_failure=stop_on_failure,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="info", access_log=False))
    server.run()
    if failures:
        print(f"error: the model could not be loaded: {failures[0]}", file=sys.stderr)
        return LOAD_FAILED
    return 0
