"""The training image as a Vertex AI CustomJob (`cloud/vertex.py` describes it); data, results and Pipes messages
in GCS. The job runs ``python -m edugraph_pipeline.training.remote -- <step>`` like the VM does, so staging, the
Pipes relay, ``status.json`` and the checkpoint sync are the same (`cloud.py`, `training/remote.py`).

Preemption: with ``SPOT`` scheduling Vertex restarts a preempted worker inside the same job
(``restart_job_on_worker_restart``); the restarted container restores the newest checkpoint synced to GCS and
continues the Pipes message sequence. A job that ends FAILED or CANCELLED without the step having reported an exit
status (the worker never came back) is a preemption: `StepPreempted`, retried by the assets' policy with a new job.
A step that reported a non-zero exit is a `StepFailed` with its own error and log tail, never retried.
"""

from __future__ import annotations

import time

from pydantic import Field

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import vertex
from edugraph_pipeline.cloud.work import FAILED, PREEMPTED, STEP_LOG, SUCCEEDED, MachineRecord, read_status, text_tail
from edugraph_pipeline.defs.training.launchers.base import LOG_TAIL_LINES, StepFailed, redacted
from edugraph_pipeline.defs.training.launchers.cloud import Attempt, CloudLauncher


class VertexLauncher(CloudLauncher):
    """The training image as a Vertex AI CustomJob (one worker), spot by default; data and Pipes in GCS."""

    metadata_prefix = "vertex"
    machine_kind = "job"

    region: str = Field(default=settings.default("EDUGRAPH_VERTEX_REGION"), description="Region of the CustomJob.")
    poll_interval_s: float = 30.0
    endpoint: str | None = Field(default=None, description="Vertex API root (tests: a local stand-in, http://...).")

    def job_spec(self) -> vertex.JobSpec:
        return vertex.JobSpec(
            bucket=self.bucket, image=self.image, machine_type=self.machine_type,
            accelerator_type=self.accelerator_type, accelerator_count=self.accelerator_count,
            boot_disk_gb=self.boot_disk_gb, max_run_hours=self.max_run_hours, service_account=self.service_account,
            labels=self.labels,
        )

    def run_machine(self, context, storage, attempt: Attempt, container_env: dict, command: list[str]) -> None:
        client = vertex.job_client(self.region, self.endpoint)
        parent = f"projects/{self.project}/locations/{self.region}"
        name, spot = attempt.layout.machine_name, attempt.spot
        body = vertex.custom_job(self.job_spec(), name=name, container_env=container_env, command=command, spot=spot,
                                 run_root=attempt.layout.run_root)
        context.log.info(
            f"Creating {'spot ' if spot else ''}Vertex AI CustomJob {name} ({self.machine_type}, "
            f"{self.accelerator_count}x {self.accelerator_type}) in {parent} running {self.image}"
        )
        created = client.create_custom_job(parent=parent, custom_job=body)
        record = MachineRecord(attempt.layout.attempt, created.name, self.region, spot, self.accelerator_count)
        attempt.ledger.write(record)
        bucket = storage.bucket(self.bucket)
        ended = False
        try:
            state, error = self._wait(context, client, created.name)
            ended = True
            record.ended = time.time()
            status = read_status(bucket, attempt.layout)
            preempted = state != vertex.SUCCEEDED and (status is None or status.get("exit_code") is None)
            record.outcome = PREEMPTED if preempted else SUCCEEDED if state == vertex.SUCCEEDED else FAILED
            attempt.ledger.write(record)
            if preempted:
                count = attempt.interrupted + 1
                message = (
                    f"Vertex AI job {created.name} ended {state} without a step result: "
                    f"preemption {count} of {attempt.limit}"
                )
                attempt.preempted(context, message, "job", detail=error)
            if state != vertex.SUCCEEDED or (status or {}).get("exit_code") != 0:
                raise StepFailed(self._failure_report(bucket, created.name, attempt.layout.run_root, state, error, status))
        finally:
            if not ended:  # run termination or an error while waiting: stop paying for the machine
                try:
                    client.cancel_custom_job(name=created.name)
                    context.log.info(f"Cancelled Vertex AI job {created.name}")
                except Exception as cancel_error:  # noqa: BLE001 - reported, the original error wins
                    context.log.error(f"Could not cancel {created.name}: {cancel_error}; cancel it by hand")

    def _wait(self, context, client, name: str) -> tuple[str, str | None]:
        deadline = time.monotonic() + self.max_run_hours * 3600 + 1800
        last = None
        while True:
            current = client.get_custom_job(name=name)
            state = current.state.name
            if state != last:
                context.log.info(f"Vertex AI job {name}: {state}")
                last = state
            if state in vertex.ENDED:
                return state, current.error.message or None
            if time.monotonic() > deadline:
                client.cancel_custom_job(name=name)
                return "JOB_STATE_CANCELLED", f"timed out after {self.max_run_hours} h"
            time.sleep(self.poll_interval_s)

    def _failure_report(self, bucket, name: str, run_root: str, state: str, error, status) -> str:
        parts = [f"Training step in Vertex AI job {name} failed: {state}"]
        if status:
            parts[0] += f", exit code {status.get('exit_code')}" + (f" {status['error']}" if status.get("error") else "")
        if error:
            parts.append(f"Vertex AI: {error}")
        tail = text_tail(bucket, f"{run_root}/{STEP_LOG}", LOG_TAIL_LINES)
        if tail is not None:
            parts.append(f"--- step log (gs://{self.bucket}/{run_root}/{STEP_LOG}, last lines) ---\n{tail}")
        return redacted("\n".join(parts))


__all__ = ["VertexLauncher"]
