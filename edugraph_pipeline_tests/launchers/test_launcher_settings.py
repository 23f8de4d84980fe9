"""launcher_from_settings() and the local launcher's command override (no engine, no cloud)."""

import sys

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
    with pytest.raises(ValueError, match="local, docker or gcp"):
        launcher_from_settings()


def test_staging_plan_and_redact(training_job, monkeypatch):
    job, data = training_job
    plan = staging_plan(job)
    assert plan == {"inputs": [job["dataset_path"]], "outputs": [job["output_dir"]]}
    (data / "work").mkdir()
    nested = {"stage": "worksheet", "config": {**job, "work_dir": str(data / "work")}, "log_every": 10}
    assert staging_plan(nested) == {"inputs": sorted([job["dataset_path"], str(data / "work")]), "outputs": [job["output_dir"]]}
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)
    assert redact(f"token={FAKE_HF_TOKEN}!") == "token=***!"


def test_local_launcher_command_override(training_job):
    job, data = training_job
    launcher = LocalLauncher(command=[sys.executable, str(data / "bin" / "stand_in_step.py")])
    result, instance = materialize_with(launcher, job, data / "work")
    assert result.success
    assert any("training on 5 examples" in (m or "") for m in user_messages(instance, result.run_id))
    assert (data / "adapters" / "worksheet-v1" / "adapter" / "adapter_config.json").is_file()
