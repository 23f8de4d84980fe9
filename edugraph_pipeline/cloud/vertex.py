"""The Vertex AI CustomJob that runs the training image: its spec (one worker pool of one replica, the GPU, spot
or standard scheduling with worker restarts, the Pipes bootstrap environment) and the JobService client.

Vertex owns what the `gcp` launcher's start script does by hand: the GPU driver, the image pull, the machine's
life and its deletion. The `vertex` launcher (``defs/training/launchers/vertex.py``) creates, polls and cancels it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
SUCCEEDED = "JOB_STATE_SUCCEEDED"
# Compute Engine's accelerator names (the `gcp` launcher's) as Vertex spells them.
ACCELERATORS = {
    "nvidia-l4": "NVIDIA_L4",
    "nvidia-tesla-t4": "NVIDIA_TESLA_T4",
    "nvidia-tesla-a100": "NVIDIA_TESLA_A100",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB",
    "nvidia-h100-80gb": "NVIDIA_H100_80GB",
}


@dataclass(frozen=True)
class JobSpec:
    """What the training job's machine is made of (the `vertex` launcher's settings)."""

    bucket: str
    image: str
    machine_type: str
    accelerator_type: str  # Compute Engine's name (nvidia-l4) or Vertex's (NVIDIA_L4)
    accelerator_count: int
    boot_disk_gb: int
    max_run_hours: float
    service_account: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def job_client(region: str, endpoint: str | None):
    """The JobService client of `region`; `endpoint` (tests: a local stand-in, REST, anonymous) overrides it."""
    from google.cloud.aiplatform_v1 import JobServiceClient

    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return JobServiceClient(credentials=AnonymousCredentials(), transport="rest",
                                client_options={"api_endpoint": endpoint})
    return JobServiceClient(client_options={"api_endpoint": f"{region}-aiplatform.googleapis.com"})


def custom_job(spec: JobSpec, *, name: str, container_env: Mapping[str, str], command: list[str], spot: bool,
               run_root: str):
    """The CustomJob: one worker pool of one replica running the image with the Pipes bootstrap environment."""
    from google.cloud.aiplatform_v1 import types

    accelerator = ACCELERATORS.get(spec.accelerator_type, spec.accelerator_type)
    machine = types.MachineSpec(machine_type=spec.machine_type)
    if spec.accelerator_count > 0:
        machine.accelerator_type = types.AcceleratorType[accelerator]
        machine.accelerator_count = spec.accelerator_count
    container = types.ContainerSpec(
        image_uri=spec.image,
        command=command,
        env=[types.EnvVar(name=k, value=v) for k, v in sorted(container_env.items())],
    )
    job_spec = types.CustomJobSpec(
        worker_pool_specs=[
            types.WorkerPoolSpec(
                machine_spec=machine,
                replica_count=1,
                container_spec=container,
                disk_spec=types.DiskSpec(boot_disk_type="pd-ssd", boot_disk_size_gb=spec.boot_disk_gb),
            )
        ],
        scheduling=types.Scheduling(
            strategy=types.Scheduling.Strategy.SPOT if spot else types.Scheduling.Strategy.STANDARD,
            restart_job_on_worker_restart=True,
            timeout=f"{int(spec.max_run_hours * 3600)}s",
        ),
        base_output_directory=types.GcsDestination(output_uri_prefix=f"gs://{spec.bucket}/{run_root}/vertex"),
    )
    if spec.service_account:
        job_spec.service_account = spec.service_account
    return types.CustomJob(display_name=name, job_spec=job_spec, labels={**spec.labels, "edugraph-step": "training"})
