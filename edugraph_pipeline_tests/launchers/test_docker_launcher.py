"""DockerLauncher against a real Docker engine: the image is built from docker/Dockerfile.trainer on an offline
Debian base (INSTALL=none: project source only); the stand-in Pipes step runs in it with the data dir mounted at
the same path and dagster-pipes mounted read-only from this venv; logs and the materialization come back.

Needs an engine (`docker/start-local-engine.sh` starts one and makes the base image); skips otherwise."""

import json
from pathlib import Path

import dagster_pipes
import pytest

from edugraph_pipeline.defs.training.launchers import DockerLauncher
from edugraph_pipeline_tests.conftest import build_source_only_image
from edugraph_pipeline_tests.launchers.conftest import (
    FAKE_HF_TOKEN,
    all_log_text,
    failure_text,
    make_step_fail,
    materialize_with,
    user_messages,
)

TEST_IMAGE = "edugraph-trainer:launcher-test"
PIPES_DIR = Path(dagster_pipes.__file__).parent


@pytest.fixture(scope="module")
def trainer_image(docker_client, tmp_path_factory) -> str:
    return build_source_only_image(docker_client, "Dockerfile.trainer", TEST_IMAGE, tmp_path_factory.mktemp("build-context"))


def make_launcher(image: str, data: Path, *, mount_data_dir: bool = True) -> DockerLauncher:
    return DockerLauncher(
        image=image,
        gpus=False,
        network="none",
        data_dir=str(data) if mount_data_dir else None,
        hf_home="",
        volumes=[f"{PIPES_DIR}:/opt/edugraph-test-site/dagster_pipes:ro"],
        env={"PYTHONPATH": "/opt/edugraph-test-site:/opt/edugraph"},
        command=["python", str(data / "bin" / "stand_in_step.py")],
    )


def test_docker_round_trip(trainer_image, training_job, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    job, data = training_job
    result, instance = materialize_with(make_launcher(trainer_image, data), job, data / "work")
    messages = user_messages(instance, result.run_id)
    assert result.success, "\n".join(m or "" for m in messages)
    assert any("stand-in step: training on 5 examples" in (m or "") for m in messages)
    (materialization,) = result.asset_materializations_for_node("stand_in_adapter")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["train_examples"] == 5
    assert metadata["hf_token_present"] is True  # passed through as container environment
    assert metadata["project_importable"] is True  # the image carries the project
    assert metadata["cwd"] == str((data / "work").resolve())
    adapter = json.loads((Path(job.output_dir) / "adapter" / "adapter_config.json").read_text())
    assert adapter["examples"] == 5  # written through the same-path bind mount
    assert FAKE_HF_TOKEN not in all_log_text(instance, result.run_id)


def test_docker_step_failure(trainer_image, training_job):
    import docker

    job, data = training_job
    make_step_fail(job)
    result, _ = materialize_with(make_launcher(trainer_image, data), job, data / "work")
    assert not result.success
    text = failure_text(result)
    assert "exited with status 1" in text
    assert "STAND-IN FAILURE: the loss exploded at step 3" in text
    leftovers = docker.from_env().containers.list(all=True, filters={"label": f"edugraph/dagster-run-id={result.run_id}"})
    assert leftovers == []  # the container is removed


def test_docker_on_a_gcs_store_mounts_the_mirror(trainer_image, training_job, monkeypatch, tmp_path):
    """EDUGRAPH_DATA_DIR=gs://... has no local folder to mount: the launcher mounts the store's local mirror
    (EDUGRAPH_CACHE_DIR), where the asset stages the job's inputs and outputs; a job outside it fails clearly."""
    job, data = training_job
    monkeypatch.setenv("EDUGRAPH_DATA_DIR", "gs://edugraph-docker-test/pipeline")
    monkeypatch.setenv("EDUGRAPH_CACHE_DIR", str(data))
    launcher = make_launcher(trainer_image, data, mount_data_dir=False)
    result, instance = materialize_with(launcher, job, data / "work")
    assert result.success, "\n".join(m or "" for m in user_messages(instance, result.run_id))
    adapter = json.loads((Path(job.output_dir) / "adapter" / "adapter_config.json").read_text())
    assert adapter["examples"] == 5

    monkeypatch.setenv("EDUGRAPH_CACHE_DIR", str(tmp_path / "elsewhere"))
    result, _ = materialize_with(launcher, job, data / "work")
    assert not result.success
    text = failure_text(result)
    assert f"{job.output_dir} (the training job's output or work dir) is outside every mount" in text
    assert "EDUGRAPH_CACHE_DIR" in text
