"""What the cloud launchers decide before and after a machine, as plain values (no cloud): an ended Vertex AI job
read from its state, its ``google.rpc.Status`` and the step's status; the GPUs training may use (bf16 only) under
both of Google Cloud's names; the pinned VM image and NVIDIA driver, refused when malformed."""

from __future__ import annotations

import dataclasses

import pytest

from edugraph_pipeline.cloud import accelerators, vertex, vm
from edugraph_pipeline.defs.training.launchers import launcher_from_settings

FAILED, EXPIRED, CANCELLED, SUCCEEDED = ("JOB_STATE_FAILED", "JOB_STATE_EXPIRED", "JOB_STATE_CANCELLED",
                                         "JOB_STATE_SUCCEEDED")
STEP = {"exit_code": 1, "error": "the step exited 1: torch.OutOfMemoryError: CUDA out of memory"}


@pytest.mark.parametrize(("state", "code", "message", "status", "kind"), [
    # the step reported: its own result, whatever Vertex did around it
    (SUCCEEDED, 0, "", {"exit_code": 0, "error": None}, vertex.STEP_SUCCEEDED),
    (SUCCEEDED, 0, "", STEP, vertex.STEP_FAILED),
    (FAILED, 8, "Resources are insufficient in region: europe-west4.", STEP, vertex.STEP_FAILED),
    (FAILED, 13, "Internal error", {"exit_code": 0, "error": None}, vertex.JOB_FAILED),
    # no step result: a machine taken back or none to be had (a new job may get one) ...
    (FAILED, 8, "Resources are insufficient in region: europe-west4.", None, vertex.INTERRUPTED),
    (FAILED, 8, "", None, vertex.INTERRUPTED),
    (FAILED, 0, "The replica workerpool0-0 was preempted: STOCKOUT", None, vertex.INTERRUPTED),
    (EXPIRED, 8, "Spot capacity was not available", None, vertex.INTERRUPTED),
    (FAILED, 8, "stand-in", {"exit_code": None, "error": "unreadable"}, vertex.INTERRUPTED),
    # ... from everything else, which a new job would meet again
    (FAILED, 9, "Unable to pull europe-west4-docker.pkg.dev/p/r/edugraph-trainer:1.2.3: permission denied", None,
     vertex.JOB_FAILED),
    (FAILED, 7, "The service account lacks roles/storage.objectAdmin", None, vertex.JOB_FAILED),
    (FAILED, 0, "The replica workerpool0-0 exited with a non-zero status of 137.", None, vertex.JOB_FAILED),
    (CANCELLED, 1, "CustomJob was cancelled.", None, vertex.JOB_FAILED),
    (SUCCEEDED, 0, "", None, vertex.JOB_FAILED),
])
def test_an_ended_vertex_job_is_read_from_its_state_error_and_the_steps_status(state, code, message, status, kind):
    outcome = vertex.job_outcome(state, code, message, status)
    assert outcome.kind == kind
    if kind == vertex.STEP_FAILED:
        assert outcome.reason == "exit code 1 the step exited 1: torch.OutOfMemoryError: CUDA out of memory"
    elif status is None and message:
        assert f"({message}, code {code})" in outcome.reason  # Vertex's own reason travels with it


def test_no_status_after_success_names_the_bucket_permission():
    reason = vertex.job_outcome(SUCCEEDED, 0, "", None).reason
    assert "the step wrote no status.json" in reason and "roles/storage.objectAdmin" in reason


@pytest.mark.parametrize(("given", "compute", "vertex_type"), [
    ("nvidia-l4", "nvidia-l4", "NVIDIA_L4"),
    ("NVIDIA_L4", "nvidia-l4", "NVIDIA_L4"),
    ("nvidia-h100-80gb", "nvidia-h100-80gb", "NVIDIA_H100_80GB"),
    ("nvidia-h100-mega-80gb", "nvidia-h100-mega-80gb", "NVIDIA_H100_MEGA_80GB"),
    ("NVIDIA_H200_141GB", "nvidia-h200-141gb", "NVIDIA_H200_141GB"),
    ("nvidia-b200", "nvidia-b200", "NVIDIA_B200"),
])
def test_training_gpus_under_both_names(given, compute, vertex_type):
    from google.cloud.aiplatform_v1 import types

    assert accelerators.compute_name(given) == compute
    assert accelerators.vertex_name(given) == vertex_type
    types.AcceleratorType[vertex_type]  # a name Vertex AI's API knows (the installed client's enum)
    spec = vertex.JobSpec(bucket="b", image="i", machine_type="a3-highgpu-1g", accelerator_type=given,
                          accelerator_count=1, boot_disk_gb=100, max_run_hours=1)
    job = vertex.custom_job(spec, name="n", container_env={}, command=["python"], spot=True, run_root="r")
    assert job.job_spec.worker_pool_specs[0].machine_spec.accelerator_type.name == vertex_type


@pytest.mark.parametrize("card", ["nvidia-tesla-t4", "NVIDIA_TESLA_T4", "nvidia-tesla-v100", "nvidia-tesla-p100",
                                  "nvidia-tesla-p4", "nvidia-tesla-k80"])
def test_gpus_without_bf16_are_refused_naming_why(card):
    with pytest.raises(ValueError, match=rf"EDUGRAPH_GCP_ACCELERATOR={card}: this GPU has no bf16, and training runs "
                                         r"in bf16 \(fp16 with loss scaling is not implemented\); use one of nvidia-l4"):
        accelerators.compute_name(card)
    spec = vertex.JobSpec(bucket="b", image="i", machine_type="n1-standard-8", accelerator_type=card,
                          accelerator_count=1, boot_disk_gb=100, max_run_hours=1)
    with pytest.raises(ValueError, match="has no bf16"):
        vertex.custom_job(spec, name="n", container_env={}, command=["python"], spot=True, run_root="r")


def test_an_unknown_gpu_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"nvidia-x1: not a training GPU known here; expected one of nvidia-l4, .*"
                                         r"nvidia-b200 \(or Vertex AI's names: NVIDIA_L4, "):
        accelerators.compute_name("nvidia-x1")


@pytest.mark.parametrize("version", ["580.126.09", "580.95", "R580", "default", "latest"])
def test_driver_versions_cos_extensions_takes(version):
    assert vm.checked_driver_version(version) == version


@pytest.mark.parametrize("version", ["", "580", "r580", "580.126.09; curl evil", "$(reboot)", "LATEST"])
def test_malformed_driver_versions_are_refused(version):
    with pytest.raises(ValueError, match=r"EDUGRAPH_GCP_GPU_DRIVER_VERSION=.*: expected a driver version such as "
                                         r"580\.126\.09, a branch such as R580, or default/latest"):
        vm.checked_driver_version(version)


@pytest.mark.parametrize(("kind", "name", "value", "error"), [
    ("vertex", "EDUGRAPH_GCP_ACCELERATOR", "nvidia-tesla-t4", "this GPU has no bf16"),
    ("gcp", "EDUGRAPH_GCP_ACCELERATOR", "nvidia-tesla-v100", "this GPU has no bf16"),
    ("gcp", "EDUGRAPH_GCP_GPU_DRIVER_VERSION", "580", "expected a driver version such as 580.126.09"),
])
def test_the_code_location_refuses_them_when_it_loads(monkeypatch, kind, name, value, error):
    for setting, setting_value in (("EDUGRAPH_TRAINING_LAUNCHER", kind), ("EDUGRAPH_GCP_PROJECT", "p"),
                                   ("EDUGRAPH_GCS_BUCKET", "b"), (name, value)):
        monkeypatch.setenv(setting, setting_value)
    with pytest.raises(ValueError, match=error):
        launcher_from_settings()
    monkeypatch.setenv("EDUGRAPH_GCP_ACCELERATOR_COUNT", "0")  # a CPU machine has no GPU to refuse
    if name == "EDUGRAPH_GCP_ACCELERATOR":
        assert launcher_from_settings().accelerator_count == 0


def test_the_vm_runs_the_pinned_image_and_driver():
    spec = vm.VmSpec(project="p", bucket="b", image="europe-west4-docker.pkg.dev/p/r/edugraph-trainer:1.2.3",
                     machine_type="a3-highgpu-1g", accelerator_type="NVIDIA_H100_80GB", accelerator_count=1,
                     vm_image="projects/cos-cloud/global/images/cos-125-19216-532-123", gpu_driver_version="580.126.09",
                     boot_disk_gb=200, network="global/networks/default", max_run_hours=2)
    script = vm.startup_script(spec, zone="europe-west4-a", instance="vm", run_root="r", container_env={},
                               command=["python"])
    body = vm.instance_body(spec, zone="europe-west4-a", instance="vm", startup=script, run_id="run", run_root="r",
                            spot=True)
    assert body["disks"][0]["initializeParams"]["sourceImage"] == "projects/cos-cloud/global/images/cos-125-19216-532-123"
    assert {"key": "cos-update-strategy", "value": "update_disabled"} in body["metadata"]["items"]
    assert body["guestAccelerators"][0]["acceleratorType"].endswith("/acceleratorTypes/nvidia-h100-80gb")
    assert "cos-extensions install gpu -- --version=580.126.09 " in script
    assert "--version=latest" not in script
    with pytest.raises(ValueError, match="GPU_DRIVER_VERSION='latest; reboot'"):
        vm.startup_script(dataclasses.replace(spec, gpu_driver_version="latest; reboot"), zone="z",
                          instance="vm", run_root="r", container_env={}, command=["python"])
