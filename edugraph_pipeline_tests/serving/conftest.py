"""The real service on a free 127.0.0.1 port (uvicorn in a thread), the tiny model, and upload builders."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from edugraph_pipeline_tests.inference.conftest import classifier, images, ontology, tiny_model_folder  # noqa: F401


@contextmanager
def running(app) -> Iterator[str]:
    """Serve `app` with uvicorn on a socket bound to a free local port; yield its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_ready(client, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get("/readyz")
        if answer.status_code == 200:
            return answer.json()
        time.sleep(0.1)
    raise AssertionError(f"not ready after {timeout} s: {answer.json()}")


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_of_zeros(width: int, height: int, rows: int | None = None) -> bytes:
    """A greyscale PNG whose header says `width` x `height`; its pixel data is all zeros, so it compresses to
    almost nothing (a decompression bomb). `rows` < height gives a header that promises more than the data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = (b"\0" * (width + 1)) * (height if rows is None else rows)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(
        b"IEND", b""
    )


@pytest.fixture(scope="session")
def served_model(classifier, tiny_model_folder):  # noqa: F811 - the fixtures imported above
    from edugraph_pipeline.serving.model import ServedModel, model_revision

    return ServedModel(classifier, "transformers", tiny_model_folder, model_revision(tiny_model_folder))
