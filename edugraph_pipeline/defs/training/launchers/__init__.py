"""Where the training step runs: a subprocess here, the GPU Docker image, or a Google Cloud GPU machine.

Every launcher runs the same entry point (``python -m edugraph_pipeline.training.entrypoint``) with the same
job description and brings its logs, metrics and materialization back to Dagster through Dagster Pipes.

``launcher_from_settings()`` picks one from ``EDUGRAPH_TRAINING_LAUNCHER`` (``local``, ``docker``, ``gcp``,
``vertex``) and binds its fields to their variables (`defaults.bound`: a `dg.EnvVar` where the variable is set);
docs/training-launchers.md documents every variable. Secrets (the Hugging Face token) never reach Dagster's event
log or metadata: Docker passes them as container environment only, GCP reads them on the VM from Secret Manager,
and every text the launchers copy into logs or error messages goes through ``redacted``.
"""

from __future__ import annotations

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import accelerators, vm
from edugraph_pipeline.defs.training.launchers.base import (
    ENTRYPOINT_MODULE,
    LAUNCHER_ENV,
    REMOTE_MODULE,
    LocalLauncher,
    StepFailed,
    StepPreempted,
    TrainingLauncher,
    redacted,
    staging_plan,
)
from edugraph_pipeline.defs.training.launchers.cloud import CloudLauncher
from edugraph_pipeline.defs.training.launchers.defaults import DEFAULT_IMAGE, bound, flag, number
from edugraph_pipeline.defs.training.launchers.docker import DockerLauncher
from edugraph_pipeline.defs.training.launchers.gcp import GcpLauncher
from edugraph_pipeline.defs.training.launchers.retry import (
    MAX_PREEMPTIONS_ENV,
    ON_DEMAND_AFTER_ENV,
    checked_max_preemptions,
    checked_on_demand_after,
)
from edugraph_pipeline.defs.training.launchers.vertex import VertexLauncher

_REQUIRED_FOR_CLOUD = ("EDUGRAPH_GCP_PROJECT", "EDUGRAPH_GCS_BUCKET")


def _cloud_fields(kind: str) -> dict:
    """The fields the `gcp` and `vertex` launchers share (the project and the bucket must be set)."""
    missing = [name for name in _REQUIRED_FOR_CLOUD if not settings.setting(name)]
    if missing:
        raise ValueError(f"{LAUNCHER_ENV}={kind} needs {', '.join(missing)} to be set")
    # out-of-range counts fail when the code location loads (the launcher checks the resolved values again)
    checked_max_preemptions(settings.integer(MAX_PREEMPTIONS_ENV))
    if settings.setting(ON_DEMAND_AFTER_ENV):
        checked_on_demand_after(settings.integer(ON_DEMAND_AFTER_ENV))
    if settings.integer("EDUGRAPH_GCP_ACCELERATOR_COUNT") > 0:
        accelerators.compute_name(settings.setting("EDUGRAPH_GCP_ACCELERATOR"))  # a GPU without bf16 is refused now
    if kind == "gcp":
        vm.checked_driver_version(settings.setting(vm.DRIVER_VERSION_ENV))
    return {
        "project": bound("EDUGRAPH_GCP_PROJECT"),
        "bucket": bound("EDUGRAPH_GCS_BUCKET"),
        "prefix": bound("EDUGRAPH_GCS_PREFIX"),
        "image": bound("EDUGRAPH_TRAINING_IMAGE"),
        "machine_type": bound("EDUGRAPH_GCP_MACHINE_TYPE"),
        "accelerator_type": bound("EDUGRAPH_GCP_ACCELERATOR"),
        "accelerator_count": bound("EDUGRAPH_GCP_ACCELERATOR_COUNT", kind=int),
        "boot_disk_gb": bound("EDUGRAPH_GCP_BOOT_DISK_GB", kind=int),
        "service_account": bound("EDUGRAPH_GCP_SERVICE_ACCOUNT", optional=True),
        "max_preemptions": bound(MAX_PREEMPTIONS_ENV, kind=int),
        "on_demand_after": bound(ON_DEMAND_AFTER_ENV, kind=int, optional=True),
        "spot": flag("EDUGRAPH_GCP_SPOT"),
        "max_run_hours": number("EDUGRAPH_GCP_MAX_RUN_HOURS"),
    }


def launcher_from_settings() -> TrainingLauncher:
    """The launcher ``EDUGRAPH_TRAINING_LAUNCHER`` names (``local`` default, ``docker``, ``gcp``, ``vertex``; the
    choice of class is made when the code location loads), its fields bound to their variables."""
    kind = settings.setting(LAUNCHER_ENV).strip().lower()
    if kind == "local":
        return LocalLauncher()
    if kind == "docker":
        return DockerLauncher(
            image=bound("EDUGRAPH_TRAINING_IMAGE"),
            gpus=flag("EDUGRAPH_DOCKER_GPUS"),
            network=bound("EDUGRAPH_DOCKER_NETWORK", optional=True),
            user=bound("EDUGRAPH_DOCKER_USER", optional=True),
        )
    if kind == "gcp":
        return GcpLauncher(
            **_cloud_fields(kind),
            zone=bound("EDUGRAPH_GCP_ZONE"),
            zones=bound("EDUGRAPH_GCP_ZONES"),
            vm_image=bound("EDUGRAPH_GCP_VM_IMAGE"),
            gpu_driver_version=bound("EDUGRAPH_GCP_GPU_DRIVER_VERSION"),
            network=bound("EDUGRAPH_GCP_NETWORK"),
            subnetwork=bound("EDUGRAPH_GCP_SUBNETWORK", optional=True),
            hf_token_secret=bound("EDUGRAPH_GCP_HF_TOKEN_SECRET", optional=True),
            compute_endpoint=bound("EDUGRAPH_GCP_COMPUTE_ENDPOINT", optional=True),
        )
    if kind == "vertex":
        return VertexLauncher(
            **_cloud_fields(kind),
            region=bound("EDUGRAPH_VERTEX_REGION"),
            endpoint=bound("EDUGRAPH_VERTEX_ENDPOINT", optional=True),
        )
    raise ValueError(f"{LAUNCHER_ENV}={kind!r}: expected local, docker, gcp or vertex")


__all__ = [
    "DEFAULT_IMAGE",
    "ENTRYPOINT_MODULE",
    "LAUNCHER_ENV",
    "REMOTE_MODULE",
    "CloudLauncher",
    "DockerLauncher",
    "GcpLauncher",
    "LocalLauncher",
    "StepFailed",
    "StepPreempted",
    "TrainingLauncher",
    "VertexLauncher",
    "launcher_from_settings",
    "redacted",
    "staging_plan",
]
