"""Where the training step runs: a subprocess here, the GPU Docker image, or a Google Cloud GPU machine.

Every launcher runs the same entry point (``python -m edugraph_pipeline.training.entrypoint``) with the same
job description and brings its logs, metrics and materialization back to Dagster through Dagster Pipes.

``launcher_from_settings()`` picks one from ``EDUGRAPH_TRAINING_LAUNCHER`` (``local``, ``docker``, ``gcp``);
docs/training-launchers.md documents every variable.  Secrets (the Hugging Face token) never reach Dagster's
event log or metadata: Docker passes them as container environment only, GCP reads them on the VM from Secret
Manager, and every text the launchers copy into logs or error messages goes through ``redact``.
"""

from __future__ import annotations

from edugraph_pipeline import settings
from edugraph_pipeline.defs.training.launchers.base import (
    DEFAULT_IMAGE,
    ENTRYPOINT_MODULE,
    LAUNCHER_ENV,
    REMOTE_MODULE,
    LocalLauncher,
    StepFailed,
    StepPreempted,
    TrainingLauncher,
    redact,
    staging_plan,
)
from edugraph_pipeline.defs.training.launchers.docker import DockerLauncher
from edugraph_pipeline.defs.training.launchers.gcp import GcpLauncher
from edugraph_pipeline.defs.training.launchers.vertex import VertexLauncher


def _cloud_fields(kind: str, image: str) -> dict:
    """The settings the `gcp` and `vertex` launchers share (the project and bucket must be set)."""
    missing = [n for n in ("EDUGRAPH_GCP_PROJECT", "EDUGRAPH_GCS_BUCKET") if not settings.setting(n)]
    if missing:
        raise ValueError(f"{LAUNCHER_ENV}={kind} needs {', '.join(missing)} to be set")
    return {
        "project": settings.setting("EDUGRAPH_GCP_PROJECT"),
        "bucket": settings.setting("EDUGRAPH_GCS_BUCKET"),
        "prefix": settings.setting("EDUGRAPH_GCS_PREFIX"),
        "image": image,
        "machine_type": settings.setting("EDUGRAPH_GCP_MACHINE_TYPE"),
        "accelerator_type": settings.setting("EDUGRAPH_GCP_ACCELERATOR"),
        "accelerator_count": settings.integer("EDUGRAPH_GCP_ACCELERATOR_COUNT"),
        "boot_disk_gb": settings.integer("EDUGRAPH_GCP_BOOT_DISK_GB"),
        "service_account": settings.setting("EDUGRAPH_GCP_SERVICE_ACCOUNT") or None,
        "spot": settings.flag("EDUGRAPH_GCP_SPOT"),
        "max_run_hours": settings.number("EDUGRAPH_GCP_MAX_RUN_HOURS"),
    }


def launcher_from_settings() -> TrainingLauncher:
    """The launcher ``EDUGRAPH_TRAINING_LAUNCHER`` names (``local`` default, ``docker``, ``gcp``, ``vertex``), configured from
    the environment (docs/training-launchers.md lists the variables)."""
    kind = settings.setting(LAUNCHER_ENV).strip().lower()
    image = settings.setting("EDUGRAPH_TRAINING_IMAGE")
    if kind == "local":
        return LocalLauncher()
    if kind == "docker":
        return DockerLauncher(
            image=image,
            gpus=settings.flag("EDUGRAPH_DOCKER_GPUS"),
            network=settings.setting("EDUGRAPH_DOCKER_NETWORK") or None,
            user=settings.setting("EDUGRAPH_DOCKER_USER") or None,
        )
    if kind == "gcp":
        return GcpLauncher(
            **_cloud_fields(kind, image),
            zone=settings.setting("EDUGRAPH_GCP_ZONE"),
            zones=[z.strip() for z in settings.setting("EDUGRAPH_GCP_ZONES").split(",") if z.strip()],
            vm_image=settings.setting("EDUGRAPH_GCP_VM_IMAGE"),
            network=settings.setting("EDUGRAPH_GCP_NETWORK"),
            subnetwork=settings.setting("EDUGRAPH_GCP_SUBNETWORK") or None,
            hf_token_secret=settings.setting("EDUGRAPH_GCP_HF_TOKEN_SECRET") or None,
            compute_endpoint=settings.setting("EDUGRAPH_GCP_COMPUTE_ENDPOINT") or None,
        )
    if kind == "vertex":
        return VertexLauncher(
            **_cloud_fields(kind, image),
            region=settings.setting("EDUGRAPH_VERTEX_REGION"),
            endpoint=settings.setting("EDUGRAPH_VERTEX_ENDPOINT") or None,
        )
    raise ValueError(f"{LAUNCHER_ENV}={kind!r}: expected local, docker, gcp or vertex")


__all__ = [
    "DEFAULT_IMAGE",
    "ENTRYPOINT_MODULE",
    "LAUNCHER_ENV",
    "REMOTE_MODULE",
    "DockerLauncher",
    "GcpLauncher",
    "LocalLauncher",
    "StepFailed",
    "StepPreempted",
    "TrainingLauncher",
    "VertexLauncher",
    "launcher_from_settings",
    "redact",
    "staging_plan",
]
