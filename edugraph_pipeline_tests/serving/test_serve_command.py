"""`edugraph serve` as a process: it answers on its port, classifies, stops gracefully on SIGTERM, and exits 2
naming the folder when the model cannot be loaded."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from edugraph_pipeline.serving.batching import BatchSettings
from edugraph_pipeline.serving.serve_command import LIMIT_SETTINGS, resolve_limits
from edugraph_pipeline.serving.uploads import UploadLimits
from edugraph_pipeline.settings import default
from edugraph_pipeline.storage.layout import model_version
from edugraph_pipeline_tests.kit.processes import free_port
from edugraph_pipeline_tests.kit.serving import png_bytes, wait_ready
from edugraph_pipeline_tests.serving.test_openai_api import data_url


def serve(*args: str, **environment: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edugraph_pipeline", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PORT": "1", **environment},
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
    # The default answer contract from its setting; a limit from its setting, another from its flag.
    process, url = serve("--model", str(tiny_model_folder), "--max-new-tokens", "8", "--max-batch", "2",
                         EDUGRAPH_SERVE_ANSWER_FORMAT="v3", EDUGRAPH_SERVE_MAX_FILES="1")
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
            two = [("file", (f"{i}.png", png_bytes(images[0]), "image/png")) for i in range(2)]
            assert client.post("/v1/classify", files=two).json()["error"]["code"] == "too_many_files"
            chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(png_bytes(images[0]))}}]}]})
            assert chat.status_code == 200, chat.text
            assert list(json.loads(chat.json()["choices"][0]["message"]["content"])) == ["areas", "scopes", "abilities"]
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


def test_limits_come_from_flags_then_settings_whose_defaults_are_the_code_s(monkeypatch):
    for name, _ in LIMIT_SETTINGS.values():
        monkeypatch.delenv(name, raising=False)
    unset = argparse.Namespace(**dict.fromkeys(LIMIT_SETTINGS))
    resolved = resolve_limits(argparse.Namespace(**vars(unset)))
    batching, limits = BatchSettings(), UploadLimits()
    assert (resolved.max_batch, resolved.batch_window_ms) == (batching.max_batch_images, batching.window_s * 1000)
    assert (resolved.max_files, resolved.max_request_mb * 2**20, resolved.max_pixels, resolved.timeout) == (
        limits.max_files, limits.max_request_bytes, limits.max_pixels, limits.request_timeout_s)
    assert resolved.answer_format == "legacy" == default("EDUGRAPH_SERVE_ANSWER_FORMAT")
    monkeypatch.setenv("EDUGRAPH_SERVE_MAX_BATCH", "3")
    monkeypatch.setenv("EDUGRAPH_SERVE_TIMEOUT", "7.5")
    flagged = argparse.Namespace(**{**vars(unset), "timeout": 2.0})
    assert (resolve_limits(flagged).max_batch, flagged.timeout) == (3, 2.0)
    monkeypatch.setenv("EDUGRAPH_SERVE_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="EDUGRAPH_SERVE_MAX_PIXELS='lots'"):
        resolve_limits(argparse.Namespace(**vars(unset)))
    monkeypatch.delenv("EDUGRAPH_SERVE_MAX_PIXELS")
    monkeypatch.setenv("EDUGRAPH_SERVE_ANSWER_FORMAT", "v2")
    with pytest.raises(ValueError, match="EDUGRAPH_SERVE_ANSWER_FORMAT='v2'"):
        resolve_limits(argparse.Namespace(**vars(unset)))
