"""Where the training step runs: a subprocess here, the GPU Docker image, or a Google Cloud GPU machine.

Every launcher runs the same entry point (``python -m edugraph_pipeline.training.entrypoint``) with the same
job description and brings its logs, metrics and materialization back to Dagster through Dagster Pipes.

``launcher_from_settings()`` picks one from ``EDUGRAPH_TRAINING_LAUNCHER`` (``local``, ``docker``, ``gcp``);
docs/training-launchers.md documents every variable.  Secrets (the Hugging Face token) never reach Dagster's
event log or metadata: Docker passes them as container environment only, GCP reads them on the VM from Secret
Manager, and every text the launchers copy into logs or error messages goes through ``redact``.
"""

from __future__ import annotations

import os

from edugraph_pipeline.training.launchers.base import (
    DEFAULT_IMAGE,
    ENTRYPOINT_MODULE,
    LAUNCHER_ENV,
    REMOTE_MODULE,
    LocalLauncher,
    TrainingLauncher,
    redact,
    staging_plan,
)
from edugraph_pipeline.training.launchers.docker import DockerLauncher
from edugraph_pipeline.training.launchers.gcp import GcpLauncher


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "") or default


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "")
    return default if not value else value.strip().lower() in ("1", "true", "yes", "on")


def launcher_from_settings() -> TrainingLauncher:
    """The launcher ``EDUGRAPH_TRAINING_LAUNCHER`` names (``local`` default, ``docker``, ``gcp``), configured from
    the environment (docs/training-launchers.md lists the variables)."""
    kind = _env(LAUNCHER_ENV, "local").strip().lower()
    image = _env("EDUGRAPH_TRAINING_IMAGE", DEFAULT_IMAGE)
    if kind == "local":
        return LocalLauncher()
    if kind == "docker":
        return DockerLauncher(
            image=image,
            gpus=_flag("EDUGRAPH_DOCKER_GPUS", True),
            network=_env("EDUGRAPH_DOCKER_NETWORK") or None,
            user=_env("EDUGRAPH_DOCKER_USER") or None,
        )
    if kind == "gcp":
        missing = [n for n in ("EDUGRAPH_GCP_PROJECT", "EDUGRAPH_GCS_BUCKET") if not _env(n)]
        if missing:
            raise ValueError(f"{LAUNCHER_ENV}=gcp needs {', '.join(missing)} to be set")
        return GcpLauncher(
            project=_env("EDUGRAPH_GCP_PROJECT"),
            zone=_env("EDUGRAPH_GCP_ZONE", "us-central1-a"),
            bucket=_env("EDUGRAPH_GCS_BUCKET"),
            prefix=_env("EDUGRAPH_GCS_PREFIX", "edugraph"),
            image=image,
            machine_type=_env("EDUGRAPH_GCP_MACHINE_TYPE", "g2-standard-8"),
            accelerator_type=_env("EDUGRAPH_GCP_ACCELERATOR", "nvidia-l4"),
            accelerator_count=int(_env("EDUGRAPH_GCP_ACCELERATOR_COUNT", "1")),
            vm_image=_env("EDUGRAPH_GCP_VM_IMAGE", "projects/cos-cloud/global/images/family/cos-stable"),
            boot_disk_gb=int(_env("EDUGRAPH_GCP_BOOT_DISK_GB", "100")),
            service_account=_env("EDUGRAPH_GCP_SERVICE_ACCOUNT") or None,
            network=_env("EDUGRAPH_GCP_NETWORK", "global/networks/default"),
            subnetwork=_env("EDUGRAPH_GCP_SUBNETWORK") or None,
            spot=_flag("EDUGRAPH_GCP_SPOT", True),
            max_run_hours=float(_env("EDUGRAPH_GCP_MAX_RUN_HOURS", "24")),
            hf_token_secret=_env("EDUGRAPH_GCP_HF_TOKEN_SECRET") or None,
            compute_endpoint=_env("EDUGRAPH_GCP_COMPUTE_ENDPOINT") or None,
        )
    raise ValueError(f"{LAUNCHER_ENV}={kind!r}: expected local, docker or gcp")


__all__ = [
    "DEFAULT_IMAGE",
    "ENTRYPOINT_MODULE",
    "LAUNCHER_ENV",
    "REMOTE_MODULE",
    "DockerLauncher",
    "GcpLauncher",
    "LocalLauncher",
    "TrainingLauncher",
    "launcher_from_settings",
    "redact",
    "staging_plan",
]
