"""launcher_from_settings() and the local launcher's command override (no engine, no cloud)."""

import sys
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.defs.training.launchers import (
    DockerLauncher,
    GcpLauncher,
    LocalLauncher,
    TrainingLauncher,
    launcher_from_settings,
    redacted,
    staging_plan,
)
from edugraph_pipeline_tests.launchers.conftest import FAKE_HF_TOKEN, materialize_with, user_messages


def resolved(launcher: TrainingLauncher, *fields: str) -> dict:
    """The launcher's fields as a run sees them (Dagster resolves the `EnvVar`s when the run starts)."""

    @dg.asset
    def probe(launcher: TrainingLauncher) -> dict:
        values = {name: getattr(launcher, name) for name in fields}
        if hasattr(launcher, "zone_list"):
            values["zone_list"] = launcher.zone_list()
        return values

    result = dg.materialize([probe], resources={"launcher": launcher})
    return result.output_for_node("probe")


def env_bound(launcher: TrainingLauncher) -> dict[str, str]:
    """field -> variable, for every field bound to its environment variable (not a value read at load)."""
    return {name: value.env_var_name for name, value in launcher if hasattr(value, "env_var_name")}


def test_default_is_local(monkeypatch):
    monkeypatch.delenv("EDUGRAPH_TRAINING_LAUNCHER", raising=False)
    assert isinstance(launcher_from_settings(), LocalLauncher)


def test_docker_from_env(monkeypatch):
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "docker")
    monkeypatch.setenv("EDUGRAPH_TRAINING_IMAGE", "registry.example/edugraph-trainer:7")
    monkeypatch.setenv("EDUGRAPH_DOCKER_GPUS", "false")
    monkeypatch.delenv("EDUGRAPH_DOCKER_NETWORK", raising=False)
    launcher = launcher_from_settings()
    assert isinstance(launcher, DockerLauncher)
    assert env_bound(launcher) == {"image": "EDUGRAPH_TRAINING_IMAGE"}  # gpus: a bool, read when loading
    assert resolved(launcher, "image", "gpus", "network") == {
        "image": "registry.example/edugraph-trainer:7", "gpus": False, "network": None}
    monkeypatch.setenv("EDUGRAPH_DOCKER_GPUS", "maybe")
    with pytest.raises(ValueError, match="EDUGRAPH_DOCKER_GPUS='maybe': expected one of"):
        launcher_from_settings()


def test_gcp_from_env(monkeypatch):
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "gcp")
    monkeypatch.delenv("EDUGRAPH_GCS_BUCKET", raising=False)
    monkeypatch.setenv("EDUGRAPH_GCP_PROJECT", "p")
    with pytest.raises(ValueError, match="EDUGRAPH_GCS_BUCKET"):
        launcher_from_settings()
    monkeypatch.setenv("EDUGRAPH_GCS_BUCKET", "b")
    monkeypatch.setenv("EDUGRAPH_GCP_ACCELERATOR", "nvidia-tesla-a100")
    monkeypatch.setenv("EDUGRAPH_GCP_MACHINE_TYPE", "a2-highgpu-1g")
    monkeypatch.setenv("EDUGRAPH_GCP_ACCELERATOR_COUNT", "2")
    for unset in ("EDUGRAPH_GCP_SPOT", "EDUGRAPH_GCP_ZONE", "EDUGRAPH_GCP_ZONES", "EDUGRAPH_GCP_MAX_PREEMPTIONS",
                  "EDUGRAPH_GCP_ON_DEMAND_AFTER", "EDUGRAPH_GCP_SERVICE_ACCOUNT"):
        monkeypatch.delenv(unset, raising=False)
    launcher = launcher_from_settings()
    assert isinstance(launcher, GcpLauncher)
    # what is set is bound as a dg.EnvVar (resolved when a run starts); the rest takes its setting's default
    assert env_bound(launcher) == {
        "project": "EDUGRAPH_GCP_PROJECT", "bucket": "EDUGRAPH_GCS_BUCKET", "accelerator_type": "EDUGRAPH_GCP_ACCELERATOR",
        "machine_type": "EDUGRAPH_GCP_MACHINE_TYPE", "accelerator_count": "EDUGRAPH_GCP_ACCELERATOR_COUNT",
    }
    assert resolved(launcher, "project", "bucket", "accelerator_type", "machine_type", "accelerator_count",
                    "spot", "max_preemptions", "on_demand_after", "service_account", "zone") == {
        "project": "p", "bucket": "b", "accelerator_type": "nvidia-tesla-a100", "machine_type": "a2-highgpu-1g",
        "accelerator_count": 2, "spot": True, "max_preemptions": 5, "on_demand_after": None,
        "service_account": None, "zone": "us-central1-a", "zone_list": ["us-central1-a"],
    }
    monkeypatch.setenv("EDUGRAPH_GCP_ACCELERATOR_COUNT", "two")
    with pytest.raises(ValueError, match="EDUGRAPH_GCP_ACCELERATOR_COUNT='two': expected an integer"):
        launcher_from_settings()  # a malformed value fails when the code location loads, naming it
    monkeypatch.setenv("EDUGRAPH_GCP_ACCELERATOR_COUNT", "1")
    monkeypatch.setenv("EDUGRAPH_GCP_ON_DEMAND_AFTER", "-1")
    with pytest.raises(ValueError, match="EDUGRAPH_GCP_ON_DEMAND_AFTER=-1: expected a count >= 0"):
        launcher_from_settings()


def test_launcher_defaults_are_the_settings_defaults():
    """One default per knob: the resource classes take theirs from settings.py's table."""
    from edugraph_pipeline import settings
    from edugraph_pipeline.defs.training.launchers import DEFAULT_IMAGE, VertexLauncher

    table = {item.name: item.default for item in settings.SETTINGS}
    gcp = GcpLauncher(project="p", bucket="b")
    vertex = VertexLauncher(project="p", bucket="b")
    assert DEFAULT_IMAGE == DockerLauncher().image == gcp.image == vertex.image == table["EDUGRAPH_TRAINING_IMAGE"]
    for launcher in (gcp, vertex):
        assert (launcher.prefix, launcher.machine_type, launcher.accelerator_type, str(launcher.accelerator_count),
                str(launcher.boot_disk_gb), str(launcher.max_preemptions), f"{launcher.max_run_hours:g}") == (
            table["EDUGRAPH_GCS_PREFIX"], table["EDUGRAPH_GCP_MACHINE_TYPE"], table["EDUGRAPH_GCP_ACCELERATOR"],
            table["EDUGRAPH_GCP_ACCELERATOR_COUNT"], table["EDUGRAPH_GCP_BOOT_DISK_GB"],
            table["EDUGRAPH_GCP_MAX_PREEMPTIONS"], table["EDUGRAPH_GCP_MAX_RUN_HOURS"])
        assert launcher.spot is (table["EDUGRAPH_GCP_SPOT"] == "true")
    assert (gcp.zone, gcp.vm_image, gcp.gpu_driver_version, gcp.network) == (
        table["EDUGRAPH_GCP_ZONE"], table["EDUGRAPH_GCP_VM_IMAGE"], table["EDUGRAPH_GCP_GPU_DRIVER_VERSION"],
        table["EDUGRAPH_GCP_NETWORK"])
    assert vertex.region == table["EDUGRAPH_VERTEX_REGION"]
    assert DockerLauncher().gpus is (table["EDUGRAPH_DOCKER_GPUS"] == "true")


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
    assert redacted(f"token={FAKE_HF_TOKEN}!") == "token=***!"
    monkeypatch.setenv("HF_TOKEN", "plain-secret-value")  # not hf_-shaped: masked because the setting holds it
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "other-secret-value")
    assert redacted("a plain-secret-value and other-secret-value") == "a *** and ***"


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
    assert resolved(launcher_from_settings())["zone_list"] == ["europe-west4-b", "europe-west4-a"]
    monkeypatch.delenv("EDUGRAPH_GCP_ZONES")
    monkeypatch.setenv("EDUGRAPH_GCP_ZONE", "us-east1-c")
    assert resolved(launcher_from_settings())["zone_list"] == ["us-east1-c"]
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "vertex")
    monkeypatch.setenv("EDUGRAPH_VERTEX_REGION", "europe-west4")
    monkeypatch.setenv("EDUGRAPH_GCP_SPOT", "false")
    launcher = launcher_from_settings()
    assert isinstance(launcher, VertexLauncher)
    assert "spot" not in env_bound(launcher)  # a bool: read (and checked) when the code location loads
    assert resolved(launcher, "project", "bucket", "region", "spot") == {
        "project": "p", "bucket": "b", "region": "europe-west4", "spot": False}
