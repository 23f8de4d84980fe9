"""The Vertex AI CustomJob that runs the training image: its spec (one worker pool of one replica, the GPU, spot or
standard scheduling, the Pipes bootstrap environment), the JobService client, and what an ended job means.

Vertex owns what the `gcp` launcher's start script does by hand: the GPU driver, the image pull, the machine's
life and its deletion. The `vertex` launcher (``defs/training/launchers/vertex.py``) creates, polls and cancels it.

Restarts are Vertex's own: it restarts a worker whose VM goes away (maintenance; a spot VM taken back, when it
can place the worker again) on another VM, and a worker whose container exits non-zero in place - up to 5 times,
then the whole job up to 3 times - unless the error is one it treats as permanent. ``restart_job_on_worker_restart``
does not ask for any of that: it makes a restart of one worker restart every worker of the job (for distributed
jobs that cannot take a worker leaving and rejoining); with our single replica the worker and the job restart
together either way. So the in-machine wrapper exits 0 once it has written ``status.json``, whatever the step did
(the step's outcome travels in the status): a deterministic failure (out of memory, bad data) is not run again on
paid GPUs, while a container restarted after a preemption resumes from the checkpoint synced to GCS.

`job_outcome` reads an ended job: the step's own result when it reported one; else the job's state and
``error`` (a ``google.rpc.Status``) tell a machine taken back or never had (a preemption, a stockout, no capacity
in the region: a new job may get one) from everything else (the image pull, IAM, the driver, a container killed
before it reported: a new job would meet it again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edugraph_pipeline.cloud.accelerators import vertex_name

# JobState values (google.cloud.aiplatform.v1.JobState) after which a job does not change any more.
SUCCEEDED = "JOB_STATE_SUCCEEDED"
ENDED = (SUCCEEDED, "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED")
# google.rpc.Code of a job's `error` when Vertex could not get or keep its machines (stockout, spot capacity).
RESOURCE_EXHAUSTED = 8
# ...and the words of its messages for the same (the code is not always set to it).
INTERRUPTION_WORDS = ("stockout", "preempt", "resources are insufficient", "insufficient resources",
                      "resource pool exhausted", "not enough resources", "capacity")

# What an ended job means for the run (`job_outcome`).
STEP_SUCCEEDED = "succeeded"
STEP_FAILED = "step_failed"  # the step reported a non-zero exit: its own error, never retried
INTERRUPTED = "interrupted"  # the machine was taken back or none could be had: a new job resumes
JOB_FAILED = "job_failed"  # anything else before the step reported: fails at once with Vertex's reason


@dataclass(frozen=True)
class JobOutcome:
    kind: str  # one of the four above
    reason: str


def job_outcome(state: str, error_code: int, error_message: str, status: Mapping | None) -> JobOutcome:
    """What an ended job (`state`, its ``error.code`` and ``error.message``) with the step's ``status.json``
    (None: not written) means."""
    exit_code = (status or {}).get("exit_code")
    if exit_code is not None and exit_code != 0:
        return JobOutcome(STEP_FAILED, f"exit code {exit_code}" + (f" {status['error']}" if status.get("error") else ""))
    if exit_code == 0:
        if state == SUCCEEDED:
            return JobOutcome(STEP_SUCCEEDED, "exit code 0")
        return JobOutcome(JOB_FAILED, f"the step reported exit code 0 but the job ended {state}: {error_message}")
    said = f" ({error_message}, code {error_code})" if error_message else ""
    if state == SUCCEEDED:
        return JobOutcome(JOB_FAILED, "the job succeeded but the step wrote no status.json: the wrapper could not "
                                      "write to the bucket (the job's service account needs roles/storage.objectAdmin)")
    if state in ("JOB_STATE_FAILED", "JOB_STATE_EXPIRED") and (
        error_code == RESOURCE_EXHAUSTED or any(word in error_message.lower() for word in INTERRUPTION_WORDS)
    ):
        return JobOutcome(INTERRUPTED, f"ended {state} without a step result{said}")
    return JobOutcome(JOB_FAILED, f"ended {state} before the step reported{said}")


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

    machine = types.MachineSpec(machine_type=spec.machine_type)
    if spec.accelerator_count > 0:
        machine.accelerator_type = types.AcceleratorType[vertex_name(spec.accelerator_type)]
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
            restart_job_on_worker_restart=True,  # one replica: worker and job restart together (module docstring)
            timeout=f"{int(spec.max_run_hours * 3600)}s",
        ),
        base_output_directory=types.GcsDestination(output_uri_prefix=f"gs://{spec.bucket}/{run_root}/vertex"),
    )
    if spec.service_account:
        job_spec.service_account = spec.service_account
    return types.CustomJob(display_name=name, job_spec=job_spec, labels={**spec.labels, "edugraph-step": "training"})
