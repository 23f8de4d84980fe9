"""The training image on a Compute Engine spot GPU VM; data, results and Pipes messages in GCS."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from edugraph_pipeline.defs.training.launchers import retry
from edugraph_pipeline.defs.training.launchers.base import (
    DEFAULT_IMAGE,
    REMOTE_MODULE,
    StepFailed,
    StepPreempted,
    TrainingLauncher,
    _tail,
    redact,
)
from edugraph_pipeline.defs.training.launchers.cloud import (
    FAILED,
    NO_CAPACITY,
    PREEMPTED,
    SUCCEEDED,
    MachineRecord,
    begin_attempt,
    finish_attempt,
    gcs_pipes_session,
)
from edugraph_pipeline.training.job import TrainingJob
from edugraph_pipeline.training.remote import gcs_client

# The CUDA version of the torch wheels in requirements.lock (torch 2.14.1+cu130) and of docker/Dockerfile.trainer's
# base: the VM's driver must support at least this, or torch sees no GPU.
TORCH_CUDA = "13.0"


# Compute Engine's answers when a zone cannot take the VM now; the next zone may.
CAPACITY_ERRORS = (
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "QUOTA_EXCEEDED",
    "RESOURCE_NOT_FOUND_IN_ZONE",  # e.g. no nvidia-l4 in that zone
    "UNSUPPORTED_OPERATION_IN_ZONE",
)


class _NoCapacity(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _capacity_reason(text: str) -> str | None:
    return next((code for code in CAPACITY_ERRORS if code in text), None)


def _http_error_text(error) -> str:
    content = getattr(error, "content", b"")
    return content.decode("utf-8", errors="replace") if isinstance(content, bytes) else str(content or error)


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


class GcpLauncher(TrainingLauncher):
    """The training image on a Compute Engine spot VM with a GPU; data, Pipes context and messages in GCS.

    Steps: stage the job's inputs once per job identity (`cloud.stage_inputs`); open a Pipes session whose context
    and messages live under ``<prefix>/runs/<run_id>/<attempt>/pipes/`` (dagster-gcp's GCS injector and reader);
    create the VM in the first of `zones` with capacity and quota; its startup script installs the GPU driver, runs
    the image with the Pipes bootstrap environment and ``python -m edugraph_pipeline.training.remote`` (downloads
    inputs, runs the entry point with checkpoint sync to ``<prefix>/work/<job key>/checkpoints``, relays its Pipes
    messages, uploads outputs and ``status.json``) and deletes the VM; wait for ``status.json`` or the VM's end;
    tell a preemption (`StepPreempted`, retried by the assets' policy) from a failure (`StepFailed`); download the
    outputs; always delete the VM; add the run's machine totals to the materialization.
    """

    project: str
    zone: str = "us-central1-a"
    zones: list[str] = Field(
        default_factory=list,
        description="Zones to try in order (first preferred; empty: `zone` only). A zone without capacity or quota "
        "(ZONE_RESOURCE_POOL_EXHAUSTED, QUOTA_EXCEEDED) moves the VM to the next.",
    )
    max_preemptions: int | None = Field(
        default=None, description="Preemptions a step survives (None: EDUGRAPH_GCP_MAX_PREEMPTIONS when it runs)."
    )
    on_demand_after: int | None = Field(
        default=None,
        description="After this many preemptions the next VM is on-demand (None: EDUGRAPH_GCP_ON_DEMAND_AFTER; unset: never).",
    )
    bucket: str
    prefix: str = "edugraph"
    image: str = Field(default=DEFAULT_IMAGE, description="Training image the VM pulls (Artifact Registry path).")
    machine_type: str = "g2-standard-8"
    accelerator_type: str = "nvidia-l4"
    accelerator_count: int = 1
    vm_image: str = "projects/cos-cloud/global/images/family/cos-stable"
    boot_disk_gb: int = 100
    service_account: str | None = Field(default=None, description="VM service account email (None: the default).")
    network: str = "global/networks/default"
    subnetwork: str | None = None
    external_ip: bool = True
    spot: bool = True
    max_run_hours: float = Field(default=24.0, description="Compute Engine deletes the VM after this long.")
    hf_token_secret: str | None = Field(
        default=None,
        description="Secret Manager version holding the Hugging Face token, e.g. "
        "projects/P/secrets/hf-token/versions/latest; read on the VM by its service account.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra (non-secret) container environment.")
    labels: dict[str, str] = Field(default_factory=dict)
    python: str = "python"
    poll_interval_s: float = 15.0
    message_interval_s: float = 10.0
    compute_endpoint: str | None = Field(default=None, description="Compute API root (tests: a local fake).")

    # ---- clients

    def _anonymous(self) -> bool:
        return bool(self.compute_endpoint) or bool(os.environ.get("STORAGE_EMULATOR_HOST"))

    def _compute(self):
        from googleapiclient.discovery import build

        if self._anonymous():
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        else:
            import google.auth

            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        options = {"api_endpoint": self.compute_endpoint} if self.compute_endpoint else None
        return build(
            "compute", "v1", credentials=credentials, static_discovery=True, client_options=options, cache_discovery=False
        )

    # ---- VM description

    def startup_script(
        self, *, instance: str, run_root: str, container_env: Mapping[str, str], command: list[str], zone: str | None = None
    ) -> str:
        """The VM's startup script (Container-Optimized OS): GPU driver, image pull, the step, log upload,
        self-delete.  Holds no secret: the HF token is read from Secret Manager on the VM."""
        q = _shell_quote
        registry = self.image.split("/", 1)[0] if "/" in self.image and "." in self.image.split("/", 1)[0] else ""
        env_flags = " ".join(f"-e {q(f'{k}={v}')}" for k, v in sorted(container_env.items()))
        if self.hf_token_secret:
            env_flags += " -e HF_TOKEN"
        docker_run = (
            "docker run --rm --name edugraph-step --network host --shm-size 16g "
            '"${GPU_ARGS[@]}" ' + env_flags + " " + q(self.image) + " " + " ".join(q(c) for c in command)
        )
        secret_block = ""
        if self.hf_token_secret:
            secret_block = f"""
# The Hugging Face token: read from Secret Manager with the VM's service account, exported to docker's
# environment only (`-e HF_TOKEN` without a value), never echoed.
set +x
HF_TOKEN="$(curl -sf -H "Authorization: Bearer $(access_token)" \\
  "https://secretmanager.googleapis.com/v1/{self.hf_token_secret}:access" \\
  | sed -nE 's/.*"data" *: *"([^"]+)".*/\\1/p' | base64 -d)" || true
export HF_TOKEN
[ -n "$HF_TOKEN" ] || echo "edugraph: WARNING could not read the Hugging Face token secret"
"""
        gpu_block = ""
        if self.accelerator_count > 0:
            gpu_block = f"""
echo "edugraph: installing the NVIDIA driver"
cos-extensions install gpu -- --version=latest || fail_step "cos-extensions could not install the NVIDIA driver"
mount --bind /var/lib/nvidia /var/lib/nvidia
mount -o remount,exec /var/lib/nvidia
# The driver must answer, and support the CUDA {TORCH_CUDA} of the image's torch; else torch would see no GPU.
SMI="$(/var/lib/nvidia/bin/nvidia-smi 2>&1)" || fail_step "nvidia-smi failed after the driver install: $SMI"
echo "$SMI"
DRIVER_CUDA="$(printf '%s' "$SMI" | sed -nE 's/.*CUDA Version: *([0-9]+\\.[0-9]+).*/\\1/p' | head -n1)"
[ -n "$DRIVER_CUDA" ] || fail_step "nvidia-smi reports no CUDA version"
printf '%s\\n%s\\n' {TORCH_CUDA} "$DRIVER_CUDA" | sort -V -C \\
  || fail_step "the NVIDIA driver supports CUDA $DRIVER_CUDA, the training image needs {TORCH_CUDA}"
GPU_ARGS=(--volume /var/lib/nvidia/lib64:/usr/local/nvidia/lib64 --volume /var/lib/nvidia/bin:/usr/local/nvidia/bin)
for dev in /dev/nvidia[0-9]* /dev/nvidia-uvm /dev/nvidiactl; do [ -e "$dev" ] && GPU_ARGS+=(--device "$dev"); done
"""
        login = f"docker-credential-gcr configure-docker --registries={q(registry)}\n" if registry else ""
        return f"""#!/bin/bash
# EduGraph training step, generated by edugraph_pipeline.defs.training.launchers.GcpLauncher.
# Output goes to the serial console (and to gs://{self.bucket}/{run_root}/logs/startup.log).
set -uo pipefail
PROJECT={q(self.project)}
ZONE={q(zone or self.zone)}
INSTANCE={q(instance)}
BUCKET={q(self.bucket)}
RUN_ROOT={q(run_root)}
MD=http://metadata.google.internal/computeMetadata/v1
LOG=/var/tmp/edugraph-startup.log
exec > >(tee -a "$LOG") 2>&1
access_token() {{
  curl -sf -H 'Metadata-Flavor: Google' "$MD/instance/service-accounts/default/token" \\
    | sed -nE 's/.*"access_token" *: *"([^"]+)".*/\\1/p'
}}
finish() {{
  echo "edugraph: startup script done; uploading its log and deleting $INSTANCE"
  curl -sf -X POST -H "Authorization: Bearer $(access_token)" -H 'Content-Type: text/plain' \\
    --data-binary @"$LOG" \\
    "https://storage.googleapis.com/upload/storage/v1/b/$BUCKET/o?uploadType=media&name=$RUN_ROOT/logs/startup.log" >/dev/null || true
  curl -sf -X DELETE -H "Authorization: Bearer $(access_token)" \\
    "https://compute.googleapis.com/compute/v1/projects/$PROJECT/zones/$ZONE/instances/$INSTANCE" >/dev/null \\
    || shutdown -h now
}}
trap finish EXIT
# A failure before the step runs: status.json is what the launcher waits for, so it reports this at once.
fail_step() {{
  echo "edugraph: $1"
  MSG="$(printf '%s' "$1" | head -c 2000 | tr '\\n\\r\\t' '   ' | tr -d '\\000-\\037' | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g')"
  printf '{{"exit_code": 97, "error": "%s"}}' "$MSG" > /var/tmp/edugraph-status.json
  curl -sf -X POST -H "Authorization: Bearer $(access_token)" -H 'Content-Type: application/json' \\
    --data-binary @/var/tmp/edugraph-status.json \\
    "https://storage.googleapis.com/upload/storage/v1/b/$BUCKET/o?uploadType=media&name=$RUN_ROOT/status.json" >/dev/null || true
  exit 1
}}
if [ -e /var/lib/edugraph-step-started ]; then echo "edugraph: step already ran on this VM"; exit 0; fi
touch /var/lib/edugraph-step-started
export HOME=/var/tmp/edugraph-home
mkdir -p "$HOME"
GPU_ARGS=()
{gpu_block}{login}{secret_block}
echo "edugraph: running the training step"
{docker_run}
echo "edugraph: step exited with status $?"
"""

    def shutdown_script(self, *, run_root: str) -> str:
        """Runs when the VM stops (best effort, ~30 s on preemption): if the metadata server says the VM is being
        preempted, it leaves ``preempted.json`` for the launcher, which then retries instead of failing."""
        q = _shell_quote
        return f"""#!/bin/bash
MD=http://metadata.google.internal/computeMetadata/v1
if curl -sf -H 'Metadata-Flavor: Google' "$MD/instance/preempted" | grep -q TRUE; then
  TOKEN="$(curl -sf -H 'Metadata-Flavor: Google' "$MD/instance/service-accounts/default/token" \\
    | sed -nE 's/.*"access_token" *: *"([^"]+)".*/\\1/p')"
  curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data '{{"preempted": true}}' \\
    "https://storage.googleapis.com/upload/storage/v1/b/{q(self.bucket)}/o?uploadType=media&name={q(run_root)}/preempted.json" || true
fi
"""

    def instance_body(
        self,
        *,
        instance: str,
        startup_script: str,
        run_id: str,
        run_root: str,
        zone: str | None = None,
        spot: bool | None = None,
    ) -> dict:
        zone_path = f"projects/{self.project}/zones/{zone or self.zone}"
        interface: dict[str, Any] = {"network": self.network}
        if self.subnetwork:
            interface["subnetwork"] = self.subnetwork
        if self.external_ip:
            interface["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
        scheduling: dict[str, Any] = {
            "automaticRestart": False,
            "onHostMaintenance": "TERMINATE",  # required with GPUs
            "instanceTerminationAction": "DELETE",
            "maxRunDuration": {"seconds": int(self.max_run_hours * 3600)},
        }
        if self.spot if spot is None else spot:
            scheduling["provisioningModel"] = "SPOT"
        body: dict[str, Any] = {
            "name": instance,
            "machineType": f"{zone_path}/machineTypes/{self.machine_type}",
            "disks": [
                {
                    "boot": True,
                    "autoDelete": True,
                    "initializeParams": {
                        "sourceImage": self.vm_image,
                        "diskSizeGb": str(self.boot_disk_gb),
                        "diskType": f"{zone_path}/diskTypes/pd-balanced",
                    },
                }
            ],
            "networkInterfaces": [interface],
            "scheduling": scheduling,
            "serviceAccounts": [
                {
                    "email": self.service_account or "default",
                    "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                }
            ],
            "metadata": {
                "items": [
                    {"key": "startup-script", "value": startup_script},
                    {"key": "shutdown-script", "value": self.shutdown_script(run_root=run_root)},
                ]
            },
            "labels": {
                **self.labels,
                "edugraph-step": "training",
                "dagster-run": "".join(c for c in run_id.lower() if c.isalnum() or c == "-")[:63],
            },
        }
        if self.accelerator_count > 0:
            body["guestAccelerators"] = [
                {
                    "acceleratorType": f"{zone_path}/acceleratorTypes/{self.accelerator_type}",
                    "acceleratorCount": self.accelerator_count,
                }
            ]
        return body

    # ---- the run

    def zone_list(self) -> list[str]:
        return list(self.zones) or [self.zone]

    def launch(
        self, context: dg.AssetExecutionContext, *, job: TrainingJob, workdir: Path, identity: str | None = None
    ) -> dg.PipesClientCompletedInvocation:
        from googleapiclient.errors import HttpError

        storage = gcs_client(self.project)
        attempt = begin_attempt(
            context, storage, bucket=self.bucket, prefix=self.prefix, job=job, identity=identity, spot=self.spot,
            max_preemptions=self.max_preemptions, on_demand_after=self.on_demand_after,
        )
        run_root, instance, ledger, spot = attempt.layout.run_root, attempt.machine_name, attempt.ledger, attempt.spot
        compute = self._compute()
        record: MachineRecord | None = None
        with gcs_pipes_session(context, storage, attempt, job, interval=self.message_interval_s, env=self.env) as (
            session,
            container_env,
        ):
            command = [self.python, "-m", REMOTE_MODULE, "--", *self.step_command(self.python)]
            try:
                zone = self._create_vm(
                    context, compute, ledger, instance, run_root, container_env, command, spot, attempt.limit
                )
                record = MachineRecord(attempt.layout.attempt, instance, zone, spot, self.accelerator_count)
                ledger.write(record)
                outcome = self._wait_for_step(context, compute, storage, zone, instance, run_root)
                record.ended = time.time()
                preempted = outcome.get("exit_code") != 0 and self._preempted(compute, storage, zone, instance, run_root)
                record.outcome = PREEMPTED if preempted else SUCCEEDED if outcome.get("exit_code") == 0 else FAILED
                ledger.write(record)
                if preempted:
                    count = attempt.interrupted + 1
                    attempt.preempted(
                        context, f"VM {instance} in {zone} was preempted (preemption {count} of {attempt.limit})", "VM"
                    )
                if outcome.get("exit_code") != 0:
                    raise StepFailed(self._failure_report(compute, storage, zone, instance, run_root, outcome))
            finally:
                if record is not None:
                    try:
                        compute.instances().delete(project=self.project, zone=record.zone, instance=instance).execute()
                        context.log.info(f"Deleted VM {instance}")
                    except HttpError as error:
                        if error.resp.status != 404:
                            context.log.error(f"Could not delete VM {instance}: {error}; delete it by hand")
        finish_attempt(context, storage, attempt, "gcp")
        return dg.PipesClientCompletedInvocation(session)

    def _create_vm(self, context, compute, ledger, instance, run_root, container_env, command, spot, limit) -> str:
        """Insert the VM in the first zone with capacity and quota; returns that zone."""
        from googleapiclient.errors import HttpError

        zones = self.zone_list()
        for index, zone in enumerate(zones):
            script = self.startup_script(
                instance=instance, run_root=run_root, container_env=container_env, command=command, zone=zone
            )
            body = self.instance_body(
                instance=instance, startup_script=script, run_id=context.run.run_id, run_root=run_root, zone=zone, spot=spot
            )
            context.log.info(
                f"Creating {'spot ' if spot else ''}VM {instance} ({self.machine_type}, "
                f"{self.accelerator_count}x {self.accelerator_type}) in {self.project}/{zone} running {self.image}"
            )
            try:
                operation = compute.instances().insert(project=self.project, zone=zone, body=body).execute()
                self._wait_operation(compute, zone, operation)
                return zone
            except HttpError as error:
                reason = _capacity_reason(_http_error_text(error))
                if reason is None:
                    raise StepFailed(f"Creating VM {instance} in {zone} failed: {redact(_http_error_text(error))}") from None
            except _NoCapacity as error:
                reason = error.reason
            following = zones[index + 1] if index + 1 < len(zones) else None
            context.log.warning(
                f"Zone {zone} cannot run the VM now ({reason})"
                + (f": trying {following}" if following else ": no zone left")
            )
        # One record per attempt (not per zone): an attempt that found no capacity counts once against the cap.
        ledger.write(
            MachineRecord(ledger.layout.attempt, instance, ",".join(zones), spot, 0, ended=time.time(), outcome=NO_CAPACITY)
        )
        count = ledger.interruptions()
        message = (
            f"No zone of {', '.join(zones)} has capacity or quota for {self.accelerator_count}x {self.accelerator_type} "
            f"now (interruption {count} of {limit})"
        )
        if count > limit:
            raise StepFailed(f"{message}: giving up ({retry.MAX_PREEMPTIONS_ENV}={limit})")
        raise StepPreempted(f"{message}: retrying later")

    def _preempted(self, compute, storage, zone: str, instance: str, run_root: str) -> bool:
        """Compute Engine's own record (a ``compute.instances.preempted`` operation on the instance), or the marker
        the VM's shutdown script writes when the metadata server says the VM is being preempted."""
        if storage.bucket(self.bucket).blob(f"{run_root}/preempted.json").exists():
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
            reason = _capacity_reason(text)
            if reason:
                raise _NoCapacity(reason)
            raise StepFailed(f"Creating the VM in {zone} failed: {text}")

    def _read_status(self, storage, run_root: str) -> dict | None:
        blob = storage.bucket(self.bucket).blob(f"{run_root}/status.json")
        if not blob.exists():
            return None
        return json.loads(blob.download_as_bytes())

    def _wait_for_step(self, context, compute, storage, zone: str, instance: str, run_root: str) -> dict:
        from googleapiclient.errors import HttpError

        deadline = time.monotonic() + self.max_run_hours * 3600 + 900
        last_state = None
        while True:
            status = self._read_status(storage, run_root)
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
            if vm_status in ("TERMINATED", "STOPPED", "SUSPENDED", "DELETED"):
                # the step may have written its status just before the VM went away
                status = self._read_status(storage, run_root)
                return status or {
                    "exit_code": None,
                    "error": f"the VM ended ({vm_status}) before the step reported a result "
                    "(spot preemption, max run duration, or the container did not start)",
                }
            if time.monotonic() > deadline:
                return {"exit_code": None, "error": f"timed out after {self.max_run_hours} h"}
            time.sleep(self.poll_interval_s)

    def _failure_report(self, compute, storage, zone: str, instance: str, run_root: str, outcome: dict) -> str:
        parts = [
            f"Training step on VM {instance} failed: "
            + (f"exit code {outcome['exit_code']}" if outcome.get("exit_code") is not None else "")
            + (f" {outcome['error']}" if outcome.get("error") else "")
        ]
        bucket = storage.bucket(self.bucket)
        for name, label in (("logs/step.log", "step log"), ("logs/startup.log", "VM startup log")):
            blob = bucket.blob(f"{run_root}/{name}")
            try:
                if blob.exists():
                    text = blob.download_as_bytes().decode("utf-8", errors="replace")
                    parts.append(f"--- {label} (gs://{self.bucket}/{run_root}/{name}, last lines) ---\n{_tail(text)}")
            except Exception as error:  # noqa: BLE001 - best effort
                parts.append(f"--- {label}: unreadable ({error}) ---")
        try:
            serial = compute.instances().getSerialPortOutput(
                project=self.project, zone=zone, instance=instance, port=1
            ).execute()
            parts.append(f"--- serial console (last lines) ---\n{_tail(serial.get('contents', ''), 40)}")
        except Exception:  # noqa: BLE001 - the VM may be gone already
            pass
        return redact("\n".join(parts))


# --------------------------------------------------------------------------------------------------- choose

