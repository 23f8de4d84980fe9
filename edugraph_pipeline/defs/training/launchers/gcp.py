"""The training image on a Compute Engine spot GPU VM (`cloud/vm.py` describes it); data, results and Pipes
messages in GCS. This module creates the VM in the first zone with capacity, polls it until the step reports,
tells a preemption from a failure, and always deletes it."""

from __future__ import annotations

import json
import time

from pydantic import Field

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import vm
from edugraph_pipeline.cloud.gcs import emulator_host
from edugraph_pipeline.cloud.work import (
    FAILED,
    NO_CAPACITY,
    PREEMPTED,
    STEP_LOG,
    SUCCEEDED,
    MachineRecord,
    read_status,
    text_tail,
)
from edugraph_pipeline.defs.training.launchers.base import (
    LOG_TAIL_LINES,
    StepFailed,
    StepPreempted,
    log_tail,
    redacted,
)
from edugraph_pipeline.defs.training.launchers.cloud import Attempt, CloudLauncher
from edugraph_pipeline.defs.training.launchers.retry import (
    MAX_PREEMPTIONS_ENV,
)

ENDED = ("TERMINATED", "STOPPED", "SUSPENDED", "DELETED")


class _NoCapacity(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GcpLauncher(CloudLauncher):
    """The training image on a Compute Engine spot VM with a GPU; data, Pipes context and messages in GCS.

    The attempt (`CloudLauncher.launch`) stages the job's inputs once per job identity and opens a Pipes session
    under ``<prefix>/runs/<run_id>/<attempt>/pipes/``; this creates the VM in the first of `zones` with capacity
    and quota; its startup script installs the GPU driver, runs the image with the Pipes bootstrap environment and
    ``python -m edugraph_pipeline.training.remote`` (downloads inputs, runs the entry point with checkpoint sync to
    ``<prefix>/work/<job key>/checkpoints``, relays its Pipes messages, uploads outputs and ``status.json``) and
    deletes the VM; this waits for ``status.json`` or the VM's end, tells a preemption (`StepPreempted`, retried by
    the assets' policy) from a failure (`StepFailed`), and always deletes the VM.
    """

    metadata_prefix = "gcp"
    machine_kind = "VM"

    zone: str = Field(default=settings.default("EDUGRAPH_GCP_ZONE"), description="Zone of the VM when `zones` is empty.")
    zones: str = Field(
        default=settings.default("EDUGRAPH_GCP_ZONES"),
        description="Comma-separated zones to try in order (first preferred; empty: `zone` only). A zone without "
        "capacity or quota (ZONE_RESOURCE_POOL_EXHAUSTED, QUOTA_EXCEEDED) moves the VM to the next.",
    )
    vm_image: str = Field(default=settings.default("EDUGRAPH_GCP_VM_IMAGE"),
                          description="Boot image: a pinned Container-Optimized OS image, moved with the driver.")
    gpu_driver_version: str = Field(default=settings.default("EDUGRAPH_GCP_GPU_DRIVER_VERSION"),
                                    description="NVIDIA driver installed on the image (cos-extensions install gpu).")
    network: str = settings.default("EDUGRAPH_GCP_NETWORK")
    subnetwork: str | None = None
    external_ip: bool = True
    hf_token_secret: str | None = Field(
        default=None,
        description="Secret Manager version holding the Hugging Face token, e.g. "
        "projects/P/secrets/hf-token/versions/latest; read on the VM by its service account.",
    )
    poll_interval_s: float = 15.0
    compute_endpoint: str | None = Field(default=None, description="Compute API root (tests: a local stand-in).")

    def zone_list(self) -> list[str]:
        return [zone.strip() for zone in self.zones.split(",") if zone.strip()] or [self.zone]

    def vm_spec(self) -> vm.VmSpec:
        return vm.VmSpec(
            project=self.project, bucket=self.bucket, image=self.image, machine_type=self.machine_type,
            accelerator_type=self.accelerator_type, accelerator_count=self.accelerator_count, vm_image=self.vm_image,
            gpu_driver_version=self.gpu_driver_version,
            boot_disk_gb=self.boot_disk_gb, network=self.network, max_run_hours=self.max_run_hours,
            service_account=self.service_account, subnetwork=self.subnetwork, external_ip=self.external_ip,
            hf_token_secret=self.hf_token_secret, labels=self.labels,
        )

    def run_machine(self, context, storage, attempt: Attempt, container_env: dict, command: list[str]) -> None:
        from googleapiclient.errors import HttpError

        compute = vm.compute_client(self.compute_endpoint, anonymous=bool(self.compute_endpoint or emulator_host()))
        instance, run_root = attempt.layout.machine_name, attempt.layout.run_root
        bucket = storage.bucket(self.bucket)
        record: MachineRecord | None = None
        try:
            zone = self._create_vm(context, compute, attempt, container_env, command)
            record = MachineRecord(attempt.layout.attempt, instance, zone, attempt.spot, self.accelerator_count)
            attempt.ledger.write(record)
            outcome = self._wait_for_step(context, compute, bucket, attempt, zone)
            record.ended = time.time()
            exit_code = outcome.get("exit_code")
            preempted = exit_code != 0 and self._preempted(compute, bucket, zone, instance, run_root)
            record.outcome = PREEMPTED if preempted else SUCCEEDED if exit_code == 0 else FAILED
            attempt.ledger.write(record)
            if preempted:
                count = attempt.interrupted + 1
                attempt.preempted(context, f"VM {instance} in {zone} was preempted (preemption {count} of "
                                           f"{attempt.limit})", "VM")
            if exit_code != 0:
                raise StepFailed(self._failure_report(compute, bucket, zone, instance, run_root, outcome))
        finally:
            if record is not None:
                try:
                    compute.instances().delete(project=self.project, zone=record.zone, instance=instance).execute()
                    context.log.info(f"Deleted VM {instance}")
                except HttpError as error:
                    if error.resp.status != 404:
                        context.log.error(f"Could not delete VM {instance}: {error}; delete it by hand")

    def _create_vm(self, context, compute, attempt: Attempt, container_env: dict, command: list[str]) -> str:
        """Insert the VM in the first zone with capacity and quota; returns that zone."""
        from googleapiclient.errors import HttpError

        spec, layout = self.vm_spec(), attempt.layout
        instance, zones = layout.machine_name, self.zone_list()
        for index, zone in enumerate(zones):
            script = vm.startup_script(spec, zone=zone, instance=instance, run_root=layout.run_root,
                                       container_env=container_env, command=command)
            body = vm.instance_body(spec, zone=zone, instance=instance, startup=script, run_id=layout.run_id,
                                    run_root=layout.run_root, spot=attempt.spot)
            context.log.info(
                f"Creating {'spot ' if attempt.spot else ''}VM {instance} ({self.machine_type}, "
                f"{self.accelerator_count}x {self.accelerator_type}) in {self.project}/{zone} running {self.image}"
            )
            try:
                operation = compute.instances().insert(project=self.project, zone=zone, body=body).execute()
                self._wait_operation(compute, zone, operation)
                return zone
            except HttpError as error:
                reason = vm.capacity_reason(vm.http_error_text(error))
                if reason is None:
                    raise StepFailed(
                        f"Creating VM {instance} in {zone} failed: {redacted(vm.http_error_text(error))}"
                    ) from None
            except _NoCapacity as error:
                reason = error.reason
            following = zones[index + 1] if index + 1 < len(zones) else None
            context.log.warning(
                f"Zone {zone} cannot run the VM now ({reason})" + (f": trying {following}" if following else ": no zone left")
            )
        # One record per attempt (not per zone): an attempt that found no capacity counts once against the cap.
        attempt.ledger.write(MachineRecord(layout.attempt, instance, ",".join(zones), attempt.spot, 0,
                                           ended=time.time(), outcome=NO_CAPACITY))
        count = attempt.ledger.interruptions()
        message = (
            f"No zone of {', '.join(zones)} has capacity or quota for {self.accelerator_count}x {self.accelerator_type} "
            f"now (interruption {count} of {attempt.limit})"
        )
        if count > attempt.limit:
            raise StepFailed(f"{message}: giving up ({MAX_PREEMPTIONS_ENV}={attempt.limit})")
        raise StepPreempted(f"{message}: retrying later")

    def _preempted(self, compute, bucket, zone: str, instance: str, run_root: str) -> bool:
        """Compute Engine's own record (a ``compute.instances.preempted`` operation on the instance), or the marker
        the VM's shutdown script writes when the metadata server says the VM is being preempted."""
        if bucket.blob(f"{run_root}/preempted.json").exists():
            return True
        response = compute.zoneOperations().list(
            project=self.project, zone=zone, filter='operationType="compute.instances.preempted"'
        ).execute()
        return any(
            op.get("operationType") == "compute.instances.preempted"
            and str(op.get("targetLink", "")).rstrip("/").endswith(f"/instances/{instance}")
            for op in response.get("items", [])
        )

    def _wait_operation(self, compute, zone: str, operation: dict, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while operation.get("status") != "DONE":
            if time.monotonic() > deadline:
                raise StepFailed(f"Compute operation {operation.get('name')} did not finish in {timeout_s:.0f} s")
            time.sleep(min(self.poll_interval_s, 5))
            operation = compute.zoneOperations().get(project=self.project, zone=zone, operation=operation["name"]).execute()
        if operation.get("error"):
            text = json.dumps(operation["error"].get("errors", operation["error"]))
            reason = vm.capacity_reason(text)
            if reason:
                raise _NoCapacity(reason)
            raise StepFailed(f"Creating the VM in {zone} failed: {redacted(text)}")

    def _wait_for_step(self, context, compute, bucket, attempt: Attempt, zone: str) -> dict:
        from googleapiclient.errors import HttpError

        instance = attempt.layout.machine_name
        deadline = time.monotonic() + self.max_run_hours * 3600 + 900
        last_state = None
        while True:
            status = read_status(bucket, attempt.layout)
            if status is not None:
                return status
            try:
                state = compute.instances().get(project=self.project, zone=zone, instance=instance).execute()
                vm_status = state.get("status")
            except HttpError as error:
                if error.resp.status != 404:
                    raise
                vm_status = "DELETED"
            if vm_status != last_state:
                context.log.info(f"VM {instance}: {vm_status}")
                last_state = vm_status
            if vm_status in ENDED:
                # the step may have written its status just before the VM went away
                return read_status(bucket, attempt.layout) or {
                    "exit_code": None,
                    "error": f"the VM ended ({vm_status}) before the step reported a result "
                    "(spot preemption, max run duration, or the container did not start)",
                }
            if time.monotonic() > deadline:
                return {"exit_code": None, "error": f"timed out after {self.max_run_hours} h"}
            time.sleep(self.poll_interval_s)

    def _failure_report(self, compute, bucket, zone: str, instance: str, run_root: str, outcome: dict) -> str:
        parts = [
            f"Training step on VM {instance} failed: "
            + (f"exit code {outcome['exit_code']}" if outcome.get("exit_code") is not None else "")
            + (f" {outcome['error']}" if outcome.get("error") else "")
        ]
        for name, label in ((STEP_LOG, "step log"), ("logs/startup.log", "VM startup log")):
            try:
                tail = text_tail(bucket, f"{run_root}/{name}", LOG_TAIL_LINES)
                if tail is not None:
                    parts.append(f"--- {label} (gs://{self.bucket}/{run_root}/{name}, last lines) ---\n{tail}")
            except Exception as error:  # noqa: BLE001 - best effort
                parts.append(f"--- {label}: unreadable ({error}) ---")
        try:
            serial = compute.instances().getSerialPortOutput(
                project=self.project, zone=zone, instance=instance, port=1
            ).execute()
            parts.append(f"--- serial console (last lines) ---\n{log_tail(serial.get('contents', ''), 40)}")
        except Exception:  # noqa: BLE001 - the VM may be gone already
            pass
        return redacted("\n".join(parts))
