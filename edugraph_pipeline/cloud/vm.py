"""The Compute Engine training VM, described: its instance body (spot, GPU, a pinned COS image, service account),
its start script (the pinned GPU driver and its CUDA check, image pull, the step, log upload, self-delete; any
failure before the step reports written to ``status.json``) and its shutdown script (the preemption marker), the
Compute API client, and the errors that mean "no capacity here, try the next zone".

The image and the driver are pins (``EDUGRAPH_GCP_VM_IMAGE``, ``EDUGRAPH_GCP_GPU_DRIVER_VERSION``): the
``cos-stable`` family and ``latest`` would change the machine under a project between two runs;
docs/training-launchers.md says how to move them together.

Plain values in, plain dicts and text out: the `gcp` launcher (``defs/training/launchers/gcp.py``) creates, polls
and deletes the VM. Nothing here holds a secret: the HF token is read from Secret Manager on the VM itself.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edugraph_pipeline.cloud.accelerators import compute_name

# The CUDA version of the torch wheels in requirements.lock (torch 2.14.1+cu130) and of docker/Dockerfile.trainer's
# base: the VM's driver must support at least this, or torch sees no GPU.
TORCH_CUDA = "13.0"
# Exit status the start script reports in status.json when the machine cannot run the step (driver, image).
MACHINE_FAILURE_EXIT = 97
# Compute Engine's answers when a zone cannot take the VM now; the next zone may.
CAPACITY_ERRORS = (
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "QUOTA_EXCEEDED",
    "RESOURCE_NOT_FOUND_IN_ZONE",  # e.g. no nvidia-l4 in that zone
    "UNSUPPORTED_OPERATION_IN_ZONE",
)
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DRIVER_VERSION_ENV = "EDUGRAPH_GCP_GPU_DRIVER_VERSION"
_DRIVER_VERSION = re.compile(r"\d{3}\.\d{1,3}(\.\d{1,3})?|R\d{3}|default|latest")


@dataclass(frozen=True)
class VmSpec:
    """What the training VM is made of (the `gcp` launcher's settings)."""

    project: str
    bucket: str
    image: str
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    vm_image: str
    gpu_driver_version: str
    boot_disk_gb: int
    network: str
    max_run_hours: float
    service_account: str | None = None
    subnetwork: str | None = None
    external_ip: bool = True
    hf_token_secret: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def checked_driver_version(value: str) -> str:
    """`value` if ``cos-extensions install gpu -- --version=`` takes it: an exact driver (``580.126.09``), a
    branch (``R580``: its newest on the image), or ``default``/``latest`` (they move with the image's driver
    list); else a `ValueError` naming the setting."""
    if not _DRIVER_VERSION.fullmatch(value):
        raise ValueError(f"{DRIVER_VERSION_ENV}={value!r}: expected a driver version such as 580.126.09, a branch "
                         "such as R580, or default/latest")
    return value


def capacity_reason(text: str) -> str | None:
    """The capacity or quota code in a Compute Engine error, or None (any other error)."""
    return next((code for code in CAPACITY_ERRORS if code in text), None)


def http_error_text(error) -> str:
    """The body of a googleapiclient `HttpError` (where Compute Engine puts its error code)."""
    content = getattr(error, "content", b"")
    return content.decode("utf-8", errors="replace") if isinstance(content, bytes) else str(content or error)


def compute_client(endpoint: str | None, *, anonymous: bool):
    """The Compute Engine v1 API: `endpoint` overrides its root (tests: a stand-in); `anonymous` skips
    credentials (a stand-in or an emulator), else Application Default Credentials."""
    from googleapiclient.discovery import build

    if anonymous:
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    else:
        import google.auth

        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    options = {"api_endpoint": endpoint} if endpoint else None
    return build("compute", "v1", credentials=credentials, static_discovery=True, client_options=options,
                 cache_discovery=False)


def startup_script(spec: VmSpec, *, zone: str, instance: str, run_root: str, container_env: Mapping[str, str],
                   command: list[str]) -> str:
    """The VM's startup script (Container-Optimized OS): the pinned GPU driver, the image pull, the step, log
    upload, self-delete. Anything that keeps the step from reporting - the driver, the pull, ``docker run`` itself
    (125: the daemon refused the container), a container that died without a status - is written to
    ``status.json`` with its reason, so the launcher fails at once instead of waiting for the VM to go away.
    Holds no secret: the HF token is read from Secret Manager on the VM."""
    q = shlex.quote
    first = spec.image.split("/", 1)[0]
    registry = first if "/" in spec.image and "." in first else ""
    env_flags = " ".join(f"-e {q(f'{k}={v}')}" for k, v in sorted(container_env.items()))
    if spec.hf_token_secret:
        env_flags += " -e HF_TOKEN"
    docker_run = (
        "docker run --rm --name edugraph-step --network host --shm-size 16g "
        '"${GPU_ARGS[@]}" ' + env_flags + " " + q(spec.image) + " " + " ".join(q(c) for c in command)
    )
    secret_block = ""
    if spec.hf_token_secret:
        secret_block = f"""
# The Hugging Face token: read from Secret Manager with the VM's service account, exported to docker's
# environment only (`-e HF_TOKEN` without a value), never echoed.
set +x
HF_TOKEN="$(curl -sf -H "Authorization: Bearer $(access_token)" \\
  "https://secretmanager.googleapis.com/v1/{spec.hf_token_secret}:access" \\
  | sed -nE 's/.*"data" *: *"([^"]+)".*/\\1/p' | base64 -d)" || true
export HF_TOKEN
[ -n "$HF_TOKEN" ] || echo "edugraph: WARNING could not read the Hugging Face token secret"
"""
    gpu_block = ""
    if spec.accelerator_count > 0:
        driver = checked_driver_version(spec.gpu_driver_version)
        gpu_block = f"""
# The driver is pinned (EDUGRAPH_GCP_GPU_DRIVER_VERSION), like the image: `latest` would move under a running project.
echo "edugraph: installing the NVIDIA driver {driver}"
cos-extensions install gpu -- --version={q(driver)} \\
  || fail_step "cos-extensions could not install the NVIDIA driver {driver} on this image (see docs/training-launchers.md, Moving the pins)"
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
# EduGraph training step, generated by edugraph_pipeline.cloud.vm for the gcp training launcher.
# Output goes to the serial console (and to gs://{spec.bucket}/{run_root}/logs/startup.log).
set -uo pipefail
PROJECT={q(spec.project)}
ZONE={q(zone)}
INSTANCE={q(instance)}
BUCKET={q(spec.bucket)}
RUN_ROOT={q(run_root)}
IMAGE={q(spec.image)}
MD=http://metadata.google.internal/computeMetadata/v1
STATE=/var/lib/edugraph
WORK=/var/tmp/edugraph
mkdir -p "$STATE" "$WORK"
LOG="$WORK/startup.log"
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
# The step could not report (the machine, the image, docker): status.json is what the launcher waits for, so it
# fails at once with this reason. `fail_step MESSAGE [EXIT CODE]` (default {MACHINE_FAILURE_EXIT}).
fail_step() {{
  echo "edugraph: $1"
  MSG="$(printf '%s' "$1" | head -c 2000 | tr '\\n\\r\\t' '   ' | tr -d '\\000-\\037' | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g')"
  printf '{{"exit_code": %d, "error": "%s"}}' "${{2:-{MACHINE_FAILURE_EXIT}}}" "$MSG" > "$WORK/status.json"
  curl -sf -X POST -H "Authorization: Bearer $(access_token)" -H 'Content-Type: application/json' \\
    --data-binary @"$WORK/status.json" \\
    "https://storage.googleapis.com/upload/storage/v1/b/$BUCKET/o?uploadType=media&name=$RUN_ROOT/status.json" >/dev/null || true
  exit 1
}}
# Whether the step's wrapper wrote status.json (it exits 0 once it has, whatever the step did).
step_reported() {{
  curl -sf -o /dev/null -H "Authorization: Bearer $(access_token)" \\
    "https://storage.googleapis.com/storage/v1/b/$BUCKET/o/${{RUN_ROOT//\\//%2F}}%2Fstatus.json"
}}
container_failure() {{
  case "$1" in
    125) echo "docker run exited 125: the docker daemon refused to start the training container" ;;
    126) echo "docker run exited 126: the training image's command cannot be invoked" ;;
    127) echo "docker run exited 127: the training image has no such command" ;;
    137) echo "the training container was killed (exit 137: out of memory, or stopped) before the step reported" ;;
    *) echo "the training container exited $1 before the step reported" ;;
  esac
}}
if [ -e "$STATE/step-started" ]; then echo "edugraph: step already ran on this VM"; exit 0; fi
touch "$STATE/step-started"
export HOME="$WORK/home"
mkdir -p "$HOME"
GPU_ARGS=()
{gpu_block}{login}{secret_block}
echo "edugraph: pulling $IMAGE"
docker pull "$IMAGE" > "$WORK/pull.log" 2>&1 \\
  || fail_step "docker pull $IMAGE failed: $(tail -n 5 "$WORK/pull.log")"
echo "edugraph: running the training step"
run_step() {{
{docker_run}
}}
run_step 2> >(tee "$WORK/container.err" >&2)
STEP_EXIT=$?
wait $! 2>/dev/null || true  # the tee of the container's stderr has written its last lines
echo "edugraph: step exited with status $STEP_EXIT"
if [ "$STEP_EXIT" -ne 0 ] && ! step_reported; then
  fail_step "$(container_failure "$STEP_EXIT"): $(tail -n 5 "$WORK/container.err")" "$STEP_EXIT"
fi
"""


def shutdown_script(*, bucket: str, run_root: str) -> str:
    """Runs when the VM stops (best effort, ~30 s on preemption): if the metadata server says the VM is being
    preempted, it leaves ``preempted.json`` for the launcher, which then retries instead of failing."""
    q = shlex.quote
    return f"""#!/bin/bash
MD=http://metadata.google.internal/computeMetadata/v1
if curl -sf -H 'Metadata-Flavor: Google' "$MD/instance/preempted" | grep -q TRUE; then
  TOKEN="$(curl -sf -H 'Metadata-Flavor: Google' "$MD/instance/service-accounts/default/token" \\
    | sed -nE 's/.*"access_token" *: *"([^"]+)".*/\\1/p')"
  curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' --data '{{"preempted": true}}' \\
    "https://storage.googleapis.com/upload/storage/v1/b/{q(bucket)}/o?uploadType=media&name={q(run_root)}/preempted.json" || true
fi
"""


def instance_body(spec: VmSpec, *, zone: str, instance: str, startup: str, run_id: str, run_root: str,
                  spot: bool) -> dict:
    """The ``instances.insert`` body: spot (deleted on preemption) or standard, the GPU, the COS boot disk, the
    service account with the cloud-platform scope, both scripts, and labels naming the Dagster run."""
    zone_path = f"projects/{spec.project}/zones/{zone}"
    interface: dict[str, Any] = {"network": spec.network}
    if spec.subnetwork:
        interface["subnetwork"] = spec.subnetwork
    if spec.external_ip:
        interface["accessConfigs"] = [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
    scheduling: dict[str, Any] = {
        "automaticRestart": False,
        "onHostMaintenance": "TERMINATE",  # required with GPUs
        "instanceTerminationAction": "DELETE",
        "maxRunDuration": {"seconds": int(spec.max_run_hours * 3600)},
    }
    if spot:
        scheduling["provisioningModel"] = "SPOT"
    body: dict[str, Any] = {
        "name": instance,
        "machineType": f"{zone_path}/machineTypes/{spec.machine_type}",
        "disks": [
            {
                "boot": True,
                "autoDelete": True,
                "initializeParams": {
                    "sourceImage": spec.vm_image,
                    "diskSizeGb": str(spec.boot_disk_gb),
                    "diskType": f"{zone_path}/diskTypes/pd-balanced",
                },
            }
        ],
        "networkInterfaces": [interface],
        "scheduling": scheduling,
        "serviceAccounts": [{"email": spec.service_account or "default", "scopes": [CLOUD_PLATFORM_SCOPE]}],
        "metadata": {
            "items": [
                {"key": "startup-script", "value": startup},
                {"key": "shutdown-script", "value": shutdown_script(bucket=spec.bucket, run_root=run_root)},
                # the pinned image stays the image: no update is staged behind the step's back
                {"key": "cos-update-strategy", "value": "update_disabled"},
            ]
        },
        "labels": {
            **spec.labels,
            "edugraph-step": "training",
            "dagster-run": "".join(c for c in run_id.lower() if c.isalnum() or c == "-")[:63],
        },
    }
    if spec.accelerator_count > 0:
        body["guestAccelerators"] = [
            {
                "acceleratorType": f"{zone_path}/acceleratorTypes/{compute_name(spec.accelerator_type)}",
                "acceleratorCount": spec.accelerator_count,
            }
        ]
    return body
