"""``edugraph serve [--model FOLDER | --gguf FOLDER] [--host H] [--port P] ...``: the classifier over HTTP.

The port defaults to ``$PORT`` (what Cloud Run sets), else 8080. The serving limits and the default answer
contract default to their settings (``EDUGRAPH_SERVE_*``, `LIMIT_SETTINGS`), read when the command runs; a flag
given wins. The model loads after the server is up (see `app`); if it cannot be loaded the server stops and the
exit status is 2, naming what is missing.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from edugraph_pipeline import settings
from edugraph_pipeline.prompts import ANSWER_FORMATS
from edugraph_pipeline.serving.batching import BatchSettings
from edugraph_pipeline.serving.uploads import UploadLimits

DEFAULT_PORT = 8080
LOAD_FAILED = 2
# flag destination -> (setting, how it is read)
LIMIT_SETTINGS = {
    "max_batch": ("EDUGRAPH_SERVE_MAX_BATCH", settings.integer),
    "batch_window_ms": ("EDUGRAPH_SERVE_BATCH_WINDOW_MS", settings.number),
    "max_files": ("EDUGRAPH_SERVE_MAX_FILES", settings.integer),
    "max_request_mb": ("EDUGRAPH_SERVE_MAX_REQUEST_MB", settings.number),
    "max_pixels": ("EDUGRAPH_SERVE_MAX_PIXELS", settings.integer),
    "timeout": ("EDUGRAPH_SERVE_TIMEOUT", settings.number),
    "answer_format": ("EDUGRAPH_SERVE_ANSWER_FORMAT", settings.setting),
}


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

    def limit(flag: str, kind: type, metavar: str, what: str, default: object) -> None:
        name = LIMIT_SETTINGS[flag.lstrip("-").replace("-", "_")][0]
        parser.add_argument(flag, type=kind, default=None, metavar=metavar,
                            help=f"{what} (default: ${name}, else {default})")

    limit("--max-batch", int, "N", "images per model batch", defaults.max_batch_images)
    limit("--batch-window-ms", float, "MS", "how long a batch waits for more requests", f"{defaults.window_s * 1000:g}")
    limit("--max-files", int, "N", "images per request", limits.max_files)
    limit("--max-request-mb", float, "MB", "request body cap", f"{limits.max_request_bytes / 2**20:g}")
    limit("--max-pixels", int, "N", "pixel cap per image, checked before decoding", limits.max_pixels)
    limit("--timeout", float, "S", "per-request timeout: upload and answer", f"{limits.request_timeout_s:g}")
    parser.add_argument(
        "--answer-format", choices=ANSWER_FORMATS, default=None,
        help="answer contract of chat completions whose request names none (response_format schema, "
        "chat_template_kwargs.answer_format): legacy {Area, Scope, Ability} or v3 {areas, scopes, abilities} "
        "(default: $EDUGRAPH_SERVE_ANSWER_FORMAT, else legacy)",
    )


def resolve_limits(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with every limit left unset taken from its setting; `ValueError` naming a malformed one."""
    for flag, (name, read) in LIMIT_SETTINGS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, read(name))
    if args.answer_format not in ANSWER_FORMATS:
        raise ValueError(f"EDUGRAPH_SERVE_ANSWER_FORMAT={args.answer_format!r}: one of {', '.join(ANSWER_FORMATS)}")
    return args


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
        resolve_limits(args)
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
        answer_format=args.answer_format,
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="info", access_log=False))
    # After a graceful shutdown uvicorn re-raises the SIGTERM it caught, under the disposition it found, so that a
    # supervisor sees the server ended by that signal. One inherited as ignored (from whatever started us) would
    # turn that into exit 0: stop by SIGTERM means stop by SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    server.run()
    if failures:
        print(f"error: the model could not be loaded: {failures[0]}", file=sys.stderr)
        return LOAD_FAILED
    return 0
