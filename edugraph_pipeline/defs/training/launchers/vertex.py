"""The training image as a Vertex AI CustomJob (`cloud/vertex.py` describes it); data, results and Pipes messages
in GCS. The job runs ``python -m edugraph_pipeline.training.remote -- <step>`` like the VM does, so staging, the
Pipes relay, ``status.json`` and the checkpoint sync are the same (`cloud.py`, `training/remote.py`).

Preemption: Vertex restarts a worker whose spot VM was taken back inside the same job, when it can place it again
(`cloud/vertex.py` says what Vertex restarts and why the wrapper exits 0 once it has reported); the restarted
container restores the newest checkpoint synced to GCS and continues the Pipes message sequence. An ended job is
read by `vertex.job_outcome`: the step's non-zero exit is a `StepFailed` with its own error and log tail; a job
that ended without a step result because its machine was taken back or none could be had (a stockout, no spot
capacity in the region) is a `StepPreempted`, retried by the assets' policy with a new job; anything else before
the step reported (the image pull, IAM, the driver, a job cancelled by hand) is a `StepFailed` with Vertex's
reason, at once.
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
            state, error_code, error = self._wait(context, client, created.name)
            ended = True
            record.ended = time.time()
            outcome = vertex.job_outcome(state, error_code, error, read_status(bucket, attempt.layout))
            record.outcome = {vertex.STEP_SUCCEEDED: SUCCEEDED, vertex.INTERRUPTED: PREEMPTED}.get(outcome.kind, FAILED)
            attempt.ledger.write(record)
            if outcome.kind == vertex.INTERRUPTED:
                count = attempt.interrupted + 1
                message = f"Vertex AI job {created.name} {outcome.reason}: preemption {count} of {attempt.limit}"
                attempt.preempted(context, message, "job")
            if outcome.kind != vertex.STEP_SUCCEEDED:
                raise StepFailed(self._failure_report(bucket, created.name, attempt.layout.run_root, state, outcome))
        finally:
            if not ended:  # run termination or an error while waiting: stop paying for the machine
                try:
                    client.cancel_custom_job(name=created.name)
                    context.log.info(f"Cancelled Vertex AI job {created.name}")
                except Exception as cancel_error:  # noqa: BLE001 - reported, the original error wins
                    context.log.error(f"Could not cancel {created.name}: {cancel_error}; cancel it by hand")

    def _wait(self, context, client, name: str) -> tuple[str, int, str]:
        """The ended job's state, ``error.code`` and ``error.message`` (0 and "" without an error)."""
        deadline = time.monotonic() + self.max_run_hours * 3600 + 1800
        last = None
        while True:
            current = client.get_custom_job(name=name)
            state = current.state.name
            if state != last:
                context.log.info(f"Vertex AI job {name}: {state}")
                last = state
            if state in vertex.ENDED:
                return state, int(current.error.code), current.error.message
            if time.monotonic() > deadline:
                client.cancel_custom_job(name=name)
                return "JOB_STATE_CANCELLED", 0, f"cancelled by the launcher: no end after {self.max_run_hours} h"
            time.sleep(self.poll_interval_s)

    def _failure_report(self, bucket, name: str, run_root: str, state: str, outcome: vertex.JobOutcome) -> str:
        parts = [f"Training step in Vertex AI job {name} failed: {state}, {outcome.reason}"]
        tail = text_tail(bucket, f"{run_root}/{STEP_LOG}", LOG_TAIL_LINES)
        if tail is not None:
            parts.append(f"--- step log (gs://{self.bucket}/{run_root}/{STEP_LOG}, last lines) ---\n{tail}")
        return redacted("\n".join(parts))


__all__ = ["VertexLauncher"]
