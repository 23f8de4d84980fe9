"""The serving image (docker/Dockerfile.serve, CPU: built on the offline Debian base with INSTALL=none) starts
`edugraph serve` on a mounted model folder and answers /healthz and /readyz inside the container.

The container runs with --network none (the local engine has no bridge), so the probes run in the container
with `docker exec`; this venv's site-packages are mounted read-only in place of the full install."""

from __future__ import annotations

import json
import shutil
import sysconfig
import time
from pathlib import Path

import pytest

from edugraph_pipeline.storage.layout import model_version
from edugraph_pipeline_tests.conftest import build_source_only_image

TEST_IMAGE = "edugraph-serve:image-test"
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
PROBE = (
    "import sys, urllib.request\n"
    "try:\n"
    "    answer = urllib.request.urlopen('http://127.0.0.1:8080' + sys.argv[1], timeout=5)\n"
    "    print(answer.status, answer.read().decode())\n"
    "except urllib.error.HTTPError as error:\n"
    "    print(error.code, error.read().decode())\n"
)


@pytest.fixture(scope="module")
def serving_image(docker_client, tmp_path_factory) -> str:
    return build_source_only_image(docker_client, "Dockerfile.serve", TEST_IMAGE, tmp_path_factory.mktemp("serve-context"))


def probe(container, path: str) -> tuple[int, dict]:
    code, output = container.exec_run(["python", "-c", PROBE, path])
    if code != 0:
        return 0, {"exec": output.decode(errors="replace")}
    status, _, body = output.decode().strip().partition(" ")
    return int(status), json.loads(body)


def readable_copy(folder: Path, target: Path) -> Path:
    """The model folder as a deployment mounts it: readable by the image's unprivileged user (the safetensors
    file is written 0600 by its owner)."""
    shutil.copytree(folder, target)
    for path in target.iterdir():
        path.chmod(0o644)
    target.chmod(0o755)
    return target


def test_image_serves_a_mounted_model(docker_client, serving_image, tiny_model_folder, ontology, tmp_path):
    mounted = readable_copy(tiny_model_folder, tmp_path / "model")
    container = docker_client.containers.run(
        serving_image,
        detach=True,
        network_mode="none",
        volumes={
            str(mounted): {"bind": "/model", "mode": "ro"},
            str(SITE_PACKAGES): {"bind": "/opt/edugraph-test-site", "mode": "ro"},
        },
        environment={"PYTHONPATH": "/opt/edugraph:/opt/edugraph-test-site"},
        labels={"edugraph/test": "serving-image"},
    )
    try:
        deadline, ready = time.monotonic() + 240, (0, {})
        while time.monotonic() < deadline:
            container.reload()
            assert container.status in ("created", "running"), container.logs().decode(errors="replace")
            ready = probe(container, "/readyz")
            if ready[0] == 200:
                break
            time.sleep(1)
        assert ready[0] == 200, (ready, container.logs().decode(errors="replace")[-3000:])
        assert ready[1]["model_revision"] == model_version(tiny_model_folder)
        assert ready[1]["ontology_version"] == ontology.version
        assert probe(container, "/healthz") == (200, {"status": "ok"})
        assert container.attrs["Config"]["User"] == "edugraph"  # not root
    finally:
        container.remove(force=True)


def test_image_without_a_model_refuses_to_start(docker_client, serving_image):
    container = docker_client.containers.run(
        serving_image,
        detach=True,
        network_mode="none",
        volumes={str(SITE_PACKAGES): {"bind": "/opt/edugraph-test-site", "mode": "ro"}},
        environment={"PYTHONPATH": "/opt/edugraph:/opt/edugraph-test-site"},
    )
    try:
        status = container.wait(timeout=240)
        logs = container.logs().decode(errors="replace")
        assert status["StatusCode"] == 2, logs
        assert "error: the model could not be loaded: /model: no config.json" in logs
    finally:
        container.remove(force=True)
