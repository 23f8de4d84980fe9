"""launcher_from_settings() and the local launcher's command override (no engine, no cloud)."""

import sys
from pathlib import Path

import pytest

from edugraph_pipeline.defs.training.launchers import (
    DockerLauncher,
    GcpLauncher,
    LocalLauncher,
    launcher_from_settings,
    redact,
    staging_plan,
)
from edugraph_pipeline_tests.launchers.conftest import FAKE_HF_TOKEN, materialize_with, user_messages


def test_default_is_local(monkeypatch):
    monkeypatch.delenv("EDUGRAPH_TRAINING_LAUNCHER", raising=False)
    assert isinstance(launcher_from_settings(), LocalLauncher)


def test_docker_from_env(monkeypatch):
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "docker")
    monkeypatch.setenv("EDUGRAPH_TRAINING_IMAGE", "registry.example/edugraph-trainer:7")
    monkeypatch.setenv("EDUGRAPH_DOCKER_GPUS", "false")
    launcher = launcher_from_settings()
    assert isinstance(launcher, DockerLauncher)
    assert (launcher.image, launcher.gpus) == ("registry.example/edugraph-trainer:7", False)


def test_gcp_from_env(monkeypatch):
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "gcp")
    monkeypatch.delenv("EDUGRAPH_GCS_BUCKET", raising=False)
    monkeypatch.setenv("EDUGRAPH_GCP_PROJECT", "p")
    with pytest.raises(ValueError, match="EDUGRAPH_GCS_BUCKET"):
        launcher_from_settings()
    monkeypatch.setenv("EDUGRAPH_GCS_BUCKET", "b")
    monkeypatch.setenv("EDUGRAPH_GCP_ACCELERATOR", "nvidia-tesla-a100")
    monkeypatch.setenv("EDUGRAPH_GCP_MACHINE_TYPE", "a2-highgpu-1g")
    launcher = launcher_from_settings()
    assert isinstance(launcher, GcpLauncher)
    assert (launcher.project, launcher.bucket, launcher.accelerator_type, launcher.machine_type, launcher.spot) == (
        "p",
        "b",
        "nvidia-tesla-a100",
        "a2-highgpu-1g",
        True,
    )


def test_unknown_launcher(monkeypatch):
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "kubernetes")
    with pytest.raises(ValueError, match="local, docker, gcp or vertex"):
        launcher_from_settings()


def test_staging_plan_and_redact(training_job, monkeypatch):
    job, data = training_job
    dataset, output = job.config.dataset_path, job.output_dir
    assert staging_plan(job.to_dict()) == {"inputs": [dataset], "outputs": [output]}
    Path(job.work_dir).mkdir(parents=True)  # an existing work dir (checkpoints of a killed run) is an input too
    assert staging_plan(job.to_dict()) == {"inputs": sorted([dataset, job.work_dir]), "outputs": [output]}
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    assert redact(f"token={FAKE_HF_TOKEN}!") == "token=***!"


def test_local_launcher_command_override(training_job):
    job, data = training_job
    launcher = LocalLauncher(command=[sys.executable, str(data / "bin" / "stand_in_step.py")])
    result, instance = materialize_with(launcher, job, data / "work")
    assert result.success
    assert any("training on 5 examples" in (m or "") for m in user_messages(instance, result.run_id))
    assert (data / "adapters" / "worksheet-v1" / "adapter" / "adapter_config.json").is_file()


def test_cloud_launchers_from_env(monkeypatch):
    from edugraph_pipeline.defs.training.launchers import VertexLauncher

    monkeypatch.setenv("EDUGRAPH_GCP_PROJECT", "p")
    monkeypatch.setenv("EDUGRAPH_GCS_BUCKET", "b")
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "gcp")
    monkeypatch.setenv("EDUGRAPH_GCP_ZONES", "europe-west4-b, europe-west4-a,")
    assert launcher_from_settings().zone_list() == ["europe-west4-b", "europe-west4-a"]
    monkeypatch.delenv("EDUGRAPH_GCP_ZONES")
    monkeypatch.setenv("EDUGRAPH_GCP_ZONE", "us-east1-c")
    assert launcher_from_settings().zone_list() == ["us-east1-c"]
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "vertex")
    monkeypatch.setenv("EDUGRAPH_VERTEX_REGION", "europe-west4")
    monkeypatch.setenv("EDUGRAPH_GCP_SPOT", "false")
    launcher = launcher_from_settings()
    assert isinstance(launcher, VertexLauncher)
    assert (launcher.project, launcher.bucket, launcher.region, launcher.spot) == ("p", "b", "europe-west4", False)
