"""GcpLauncher against the real Google client libraries and local stand-ins: the GCS emulator holds the staged
data and the Pipes context/messages; a fake Compute Engine API records the VM request and runs its container
command locally (python -m edugraph_pipeline.training.remote -- <stand-in step>)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from dagster_pipes import decode_param

from edugraph_pipeline.defs.training.launchers import REMOTE_MODULE, GcpLauncher
from edugraph_pipeline_tests.kit.gcp import FakeCompute, StorageEmulator, parse_docker_run
from edugraph_pipeline_tests.launchers.conftest import (
    FAKE_HF_TOKEN,
    all_log_text,
    failure_text,
    make_step_fail,
    materialize_with,
    user_messages,
)

BUCKET = "edugraph-test-bucket"
SECRET_NAME = "projects/edugraph-test/secrets/hf-token/versions/latest"


@pytest.fixture
def gcp(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_HF_TOKEN)  # in the Dagster process's environment: must not leak anywhere
    with StorageEmulator(BUCKET) as storage:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.host)
        with FakeCompute(tmp_path / "vm-disks", {"HF_TOKEN": FAKE_HF_TOKEN}) as compute:
            compute.emulator_host = storage.host
            yield compute


def make_launcher(compute: FakeCompute, step: Path, **overrides) -> GcpLauncher:
    fields = dict(
        project="edugraph-test",
        zone="europe-west4-a",
        bucket=BUCKET,
        prefix="pipeline",
        image="europe-west4-docker.pkg.dev/edugraph-test/images/edugraph-trainer:1.2.3",
        machine_type="g2-standard-8",
        accelerator_type="nvidia-l4",
        accelerator_count=1,
        service_account="trainer@edugraph-test.iam.gserviceaccount.com",
        hf_token_secret=SECRET_NAME,
        python=sys.executable,
        command=[sys.executable, str(step)],
        poll_interval_s=0.2,
        message_interval_s=0.5,
        compute_endpoint=compute.endpoint,
    )
    return GcpLauncher(**{**fields, **overrides})


def test_gcp_round_trip(gcp: FakeCompute, training_job):
    job, data = training_job
    launcher = make_launcher(gcp, data / "bin" / "stand_in_step.py")
    result, instance = materialize_with(launcher, job, data / "work")
    messages = user_messages(instance, result.run_id)
    assert result.success, "\n".join(messages)

    # the VM request: spot, GPU, COS image, service account, startup script with the Pipes bootstrap env
    (spec,) = gcp.inserted()
    assert spec["scheduling"]["provisioningModel"] == "SPOT"
    assert spec["scheduling"]["instanceTerminationAction"] == "DELETE"
    assert spec["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert spec["machineType"].endswith("/zones/europe-west4-a/machineTypes/g2-standard-8")
    (accelerator,) = spec["guestAccelerators"]
    assert accelerator["acceleratorType"].endswith("/acceleratorTypes/nvidia-l4")
    assert accelerator["acceleratorCount"] == 1
    # the pinned image and driver (settings.py's defaults), never a family or `latest` that moves
    assert spec["disks"][0]["initializeParams"]["sourceImage"] == "projects/cos-cloud/global/images/cos-125-19216-532-123"
    assert spec["serviceAccounts"][0]["email"] == "trainer@edugraph-test.iam.gserviceaccount.com"
    script = next(i["value"] for i in spec["metadata"]["items"] if i["key"] == "startup-script")
    assert "cos-extensions install gpu -- --version=580.126.09 " in script
    assert "docker-credential-gcr configure-docker --registries=europe-west4-docker.pkg.dev" in script
    assert SECRET_NAME in script  # the reference, read on the VM
    image, env, command = parse_docker_run(script)
    assert image == launcher.image
    assert command[:6] == [sys.executable, "-m", REMOTE_MODULE, "--message-interval", "0.5", "--"]
    assert command[6:] == [sys.executable, str(data / "bin" / "stand_in_step.py")]
    assert env["HF_TOKEN"] is None  # passed by name only
    context_params = decode_param(env["DAGSTER_PIPES_CONTEXT"])
    message_params = decode_param(env["DAGSTER_PIPES_MESSAGES"])
    run_root = context_params["key"].split("/pipes/")[0]
    assert run_root.startswith(f"pipeline/runs/{result.run_id}/")
    assert context_params["bucket"] == message_params["bucket"] == BUCKET
    assert message_params["key_prefix"] == f"{run_root}/pipes/messages"

    # the step's log and materialization came back through GCS
    assert any("stand-in step: training on 5 examples" in (m or "") for m in messages)
    (materialization,) = result.asset_materializations_for_node("stand_in_adapter")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["train_examples"] == 5
    assert metadata["hf_token_present"] is True
    # the step ran on the "VM disk" (inputs downloaded there), and its outputs came back to the local output dir
    assert Path(metadata["dataset_path"]).is_relative_to(gcp.vm_root)
    assert not Path(job.config.dataset_path).is_relative_to(gcp.vm_root)
    adapter = json.loads((Path(job.output_dir) / "adapter" / "adapter_config.json").read_text())
    assert adapter == {"examples": 5, "first": '{"id": 0}'}

    # the VM is deleted; the secret is nowhere
    assert gcp.deleted() == [spec["name"]]
    for request in gcp.requests:
        assert FAKE_HF_TOKEN not in request["body"] and FAKE_HF_TOKEN not in request["query"]
    assert FAKE_HF_TOKEN not in all_log_text(instance, result.run_id)
    assert FAKE_HF_TOKEN not in json.dumps(metadata)


def test_gcp_step_failure_reports_logs_and_deletes_vm(gcp: FakeCompute, training_job):
    job, data = training_job
    make_step_fail(job)
    launcher = make_launcher(gcp, data / "bin" / "stand_in_step.py")
    result, instance = materialize_with(launcher, job, data / "work")
    assert not result.success
    text = failure_text(result)
    assert "STAND-IN FAILURE: the loss exploded at step 3" in text
    assert "stand-in training diverged" in text
    (spec,) = gcp.inserted()
    assert spec["name"] in gcp.deleted()
    assert not Path(job.output_dir).exists()
    assert FAKE_HF_TOKEN not in all_log_text(instance, result.run_id)
