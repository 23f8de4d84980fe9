"""`edugraph serve` as a process: it answers on its port, classifies, stops gracefully on SIGTERM, and exits 2
naming the folder when the model cannot be loaded."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from edugraph_pipeline.storage.layout import model_version
from edugraph_pipeline_tests.kit.serving import png_bytes, wait_ready


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(*args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edugraph_pipeline", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PORT": "1"},
    )
    return process, f"http://127.0.0.1:{port}"


def wait_up(client: httpx.Client, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("edugraph serve did not answer /healthz")


def test_serve_answers_and_stops_cleanly(tiny_model_folder, images, ontology):
    process, url = serve("--model", str(tiny_model_folder), "--max-new-tokens", "8", "--max-batch", "2")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_up(client, process)
            ready = wait_ready(client)
            assert ready["model_revision"] == model_version(tiny_model_folder)
            response = client.post("/v1/classify", files={"file": ("sheet.png", png_bytes(images[0]), "image/png")})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["ontology_version"] == ontology.version
            assert body["results"][0]["file"] == "sheet.png"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    # A graceful stop: in-flight requests finished, the lifespan closed; then uvicorn re-raises the signal so a
    # supervisor sees the process ended by SIGTERM.
    assert "Application shutdown complete." in err
    assert process.returncode == -signal.SIGTERM, err


def test_serve_exits_2_naming_a_missing_model(tmp_path):
    missing = tmp_path / "no-such-model"
    process, _ = serve("--model", str(missing))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert f"error: the model could not be loaded: {missing}: model folder does not exist" in err
