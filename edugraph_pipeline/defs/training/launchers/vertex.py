"""The training image as a Vertex AI CustomJob (google-cloud-aiplatform); data, results and Pipes messages in GCS.

Vertex owns what the `gcp` launcher's start script does by hand: the GPU driver, the image pull, the machine's
life and its deletion. The job runs ``python -m edugraph_pipeline.training.remote -- <step>`` like the VM does, so
staging, the Pipes relay, ``status.json`` and the checkpoint sync are the same (`cloud.py`, `training/remote.py`).

Preemption: with ``SPOT`` scheduling Vertex restarts a preempted worker inside the same job
(``restart_job_on_worker_restart``); the restarted container restores the newest checkpoint synced to GCS and
continues the Pipes message sequence. A job that ends FAILED or CANCELLED without the step having reported an exit
status (the worker never came back) is a preemption: `StepPreempted`, retried by the assets' policy with a new job.
A step that reported a non-zero exit is a `StepFailed` with its own error and log tail, never retried.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from edugraph_pipeline.defs.training.launchers.base import (
    DEFAULT_IMAGE,
    REMOTE_MODULE,
    StepFailed,
    TrainingLauncher,
    _tail,
    redact,
)
from edugraph_pipeline.defs.training.launchers.cloud import (
    FAILED,
    PREEMPTED,
    SUCCEEDED,
    MachineRecord,
    begin_attempt,
    finish_attempt,
    gcs_pipes_session,
)
from edugraph_pipeline.training.job import TrainingJob
from edugraph_pipeline.training.remote import gcs_client

ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
# Compute Engine's accelerator names (the `gcp` launcher's) as Vertex spells them.
ACCELERATORS = {
    "nvidia-l4": "NVIDIA_L4",
    "nvidia-tesla-t4": "NVIDIA_TESLA_T4",
    "nvidia-tesla-a100": "NVIDIA_TESLA_A100",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB",
    "nvidia-h100-80gb": "NVIDIA_H100_80GB",
}


class VertexLauncher(TrainingLauncher):
    """The training image as a Vertex AI CustomJob (one worker), spot by default; data and Pipes in GCS."""

    project: str
    region: str = "us-central1"
    bucket: str
    prefix: str = "edugraph"
    image: str = Field(default=DEFAULT_IMAGE, description="Training image (Artifact Registry path).")
    machine_type: str = "g2-standard-8"
    accelerator_type: str = Field(default="nvidia-l4", description="nvidia-l4 ... or Vertex's NVIDIA_L4 spelling.")
    accelerator_count: int = 1
    boot_disk_gb: int = 100
    service_account: str | None = Field(default=None, description="Service account the job runs as (None: Vertex's).")
    spot: bool = True
    max_run_hours: float = 24.0
    max_preemptions: int | None = Field(default=None, description="None: EDUGRAPH_GCP_MAX_PREEMPTIONS when it runs.")
    on_demand_after: int | None = Field(default=None, description="None: EDUGRAPH_GCP_ON_DEMAND_AFTER when it runs.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra (non-secret) container environment.")
    labels: dict[str, str] = Field(default_factory=dict)
    python: str = "python"
    poll_interval_s: float = 30.0
    message_interval_s: float = 10.0
    endpoint: str | None = Field(default=None, description="Vertex API root (tests: a local stand-in, http://...).")

    def _client(self):
        from google.cloud.aiplatform_v1 import JobServiceClient

        if self.endpoint:
            from google.auth.credentials import AnonymousCredentials

            return JobServiceClient(
                credentials=AnonymousCredentials(), transport="rest", client_options={"api_endpoint": self.endpoint}
            )
        return JobServiceClient(client_options={"api_endpoint": f"{self.region}-aiplatform.googleapis.com"})

    def custom_job(self, *, name: str, container_env: dict[str, str], command: list[str], spot: bool, run_root: str):
        """The CustomJob: one worker pool of one replica running the image with the Pipes bootstrap environment."""
        from google.cloud.aiplatform_v1 import types

        accelerator = ACCELERATORS.get(self.accelerator_type, self.accelerator_type)
        machine = types.MachineSpec(machine_type=self.machine_type)
        if self.accelerator_count > 0:
            machine.accelerator_type = types.AcceleratorType[accelerator]
            machine.accelerator_count = self.accelerator_count
        container = types.ContainerSpec(
            image_uri=self.image,
            command=command,
            env=[types.EnvVar(name=k, value=v) for k, v in sorted(container_env.items())],
        )
        spec = types.CustomJobSpec(
            worker_pool_specs=[
                types.WorkerPoolSpec(
                    machine_spec=machine,
                    replica_count=1,
                    container_spec=container,
                    disk_spec=types.DiskSpec(boot_disk_type="pd-ssd", boot_disk_size_gb=self.boot_disk_gb),
                )
            ],
            scheduling=types.Scheduling(
                strategy=types.Scheduling.Strategy.SPOT if spot else types.Scheduling.Strategy.STANDARD,
                restart_job_on_worker_restart=True,
                timeout=f"{int(self.max_run_hours * 3600)}s",
            ),
            base_output_directory=types.GcsDestination(output_uri_prefix=f"gs://{self.bucket}/{run_root}/vertex"),
        )
        if self.service_account:
            spec.service_account = self.service_account
        return types.CustomJob(
            display_name=name,
            job_spec=spec,
            labels={**self.labels, "edugraph-step": "training"},
        )

    def launch(
        self, context: dg.AssetExecutionContext, *, job: TrainingJob, workdir: Path, identity: str | None = None
    ) -> dg.PipesClientCompletedInvocation:
        storage = gcs_client(self.project)
        attempt = begin_attempt(
            context, storage, bucket=self.bucket, prefix=self.prefix, job=job, identity=identity, spot=self.spot,
            max_preemptions=self.max_preemptions, on_demand_after=self.on_demand_after,
        )
        run_root, name, ledger, spot = attempt.layout.run_root, attempt.machine_name, attempt.ledger, attempt.spot
        client = self._client()
        parent = f"projects/{self.project}/locations/{self.region}"
        with gcs_pipes_session(context, storage, attempt, job, interval=self.message_interval_s, env=self.env) as (
            session,
            container_env,
        ):
            command = [self.python, "-m", REMOTE_MODULE, "--", *self.step_command(self.python)]
            body = self.custom_job(name=name, container_env=container_env, command=command, spot=spot, run_root=run_root)
            context.log.info(
                f"Creating {'spot ' if spot else ''}Vertex AI CustomJob {name} ({self.machine_type}, "
                f"{self.accelerator_count}x {self.accelerator_type}) in {parent} running {self.image}"
            )
            created = client.create_custom_job(parent=parent, custom_job=body)
            record = MachineRecord(attempt.layout.attempt, created.name, self.region, spot, self.accelerator_count)
            ledger.write(record)
            ended = False
            try:
                state, error = self._wait(context, client, created.name)
                ended = True
                record.ended = time.time()
                status = self._status(storage, run_root)
                preempted = state != "JOB_STATE_SUCCEEDED" and (status is None or status.get("exit_code") is None)
                record.outcome = PREEMPTED if preempted else SUCCEEDED if state == "JOB_STATE_SUCCEEDED" else FAILED
                ledger.write(record)
                if preempted:
                    count = attempt.interrupted + 1
                    message = (
                        f"Vertex AI job {created.name} ended {state} without a step result: "
                        f"preemption {count} of {attempt.limit}"
                    )
                    attempt.preempted(context, message, "job", detail=error)
                if state != "JOB_STATE_SUCCEEDED" or (status or {}).get("exit_code") != 0:
                    raise StepFailed(self._failure_report(storage, created.name, run_root, state, error, status))
            finally:
                if not ended:  # run termination or an error while waiting: stop paying for the machine
                    try:
                        client.cancel_custom_job(name=created.name)
                        context.log.info(f"Cancelled Vertex AI job {created.name}")
                    except Exception as cancel_error:  # noqa: BLE001 - reported, the original error wins
                        context.log.error(f"Could not cancel {created.name}: {cancel_error}; cancel it by hand")
        finish_attempt(context, storage, attempt, "vertex")
        return dg.PipesClientCompletedInvocation(session)

    def _wait(self, context, client, name: str) -> tuple[str, str | None]:
        deadline = time.monotonic() + self.max_run_hours * 3600 + 1800
        last = None
        while True:
            current = client.get_custom_job(name=name)
            state = current.state.name
            if state != last:
                context.log.info(f"Vertex AI job {name}: {state}")
                last = state
            if state in ENDED:
                return state, current.error.message or None
            if time.monotonic() > deadline:
                client.cancel_custom_job(name=name)
                return "JOB_STATE_CANCELLED", f"timed out after {self.max_run_hours} h"
            time.sleep(self.poll_interval_s)

    def _status(self, storage, run_root: str) -> dict | None:
        blob = storage.bucket(self.bucket).blob(f"{run_root}/status.json")
        return json.loads(blob.download_as_bytes()) if blob.exists() else None

    def _failure_report(self, storage, name: str, run_root: str, state: str, error, status) -> str:
        parts = [f"Training step in Vertex AI job {name} failed: {state}"]
        if status:
            parts[0] += f", exit code {status.get('exit_code')}" + (f" {status['error']}" if status.get("error") else "")
        if error:
            parts.append(f"Vertex AI: {error}")
        blob = storage.bucket(self.bucket).blob(f"{run_root}/logs/step.log")
        if blob.exists():
            text = blob.download_as_bytes().decode("utf-8", errors="replace")
            parts.append(f"--- step log (gs://{self.bucket}/{run_root}/logs/step.log, last lines) ---\n{_tail(text)}")
        return redact("\n".join(parts))


__all__ = ["VertexLauncher"]
