"""The launcher interface, the local subprocess launcher, and what every launcher shares: the step's modules, the
staging plan of a job's paths, the two failures (a step's own, a preemption), and secrets kept out of every text
a launcher forwards (`edugraph_pipeline.redaction`, with the secret values read through settings)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from edugraph_pipeline import redaction, settings
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline.training.job import TrainingJob

ENTRYPOINT_MODULE = "edugraph_pipeline.training.entrypoint"
REMOTE_MODULE = "edugraph_pipeline.training.remote"
LAUNCHER_ENV = "EDUGRAPH_TRAINING_LAUNCHER"

# Environment variables holding secrets: passed to the step, never logged; their values are masked in any text
# the launchers forward (container logs, serial console, error messages).
SECRET_ENV = ("HF_TOKEN", settings.LEGACY_HUB_TOKEN_VARIABLE)
# Variables forwarded to the Docker step when set here (the secrets as container environment only).
PASSTHROUGH_ENV = (
    *SECRET_ENV,
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "HF_HUB_ENABLE_HF_TRANSFER",
    "TRANSFORMERS_OFFLINE",
    "EDUGRAPH_MODEL",
    "EDUGRAPH_BASE_MODEL",
    "EDUGRAPH_RUN_MODE",
)
LOG_TAIL_LINES = 60


def secret_values() -> list[str]:
    """The values of the secret variables (`SECRET_ENV`) as the settings read them."""
    return [settings.setting("HF_TOKEN"), settings.other_tool(settings.LEGACY_HUB_TOKEN_VARIABLE)]


def redacted(text: str) -> str:
    """`text` with every secret value, bearer value, hf_-shaped token and URL credential masked."""
    return redaction.redact(text, secret_values())


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class StepFailed(dg.Failure):
    """The training step itself failed (its code, its data, its memory, a bad image): retrying would fail the same
    way, so no retry policy retries it (``allow_retries=False``)."""

    def __init__(self, description: str, metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__(description=description, metadata=metadata, allow_retries=False)


class StepPreempted(dg.Failure):
    """The machine under the step was taken back (spot preemption, a Vertex worker restart limit): the training
    assets' retry policy starts a new machine, which resumes from the checkpoint synced to GCS."""

    def __init__(self, description: str, metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__(description=description, metadata=metadata, allow_retries=True)


class TrainingLauncher(dg.ConfigurableResource):
    """Base: `launch` runs one training job and returns the Pipes invocation to read results from."""

    command: list[str] | None = Field(
        default=None,
        description="Run this command as the step instead of `python -m edugraph_pipeline.training.entrypoint` "
        "(tests, debugging). It must speak Dagster Pipes and read `extras['job']`.",
    )

    def launch(
        self,
        context: dg.AssetExecutionContext,
        *,
        job: TrainingJob,
        workdir: Path,
        identity: str | None = None,
        store: ArtifactStore | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        """Run `job`; `identity` (the asset's `job.identity(inputs)`) names the job's stable remote folders
        (checkpoints, staged inputs) for the cloud launchers (None: one derived from `job.decisive()`); `store`
        is the artifact store the job's paths lie in (the cloud launchers let the step read and write a GCS
        store's objects itself; None: the job's paths are plain local files)."""
        raise NotImplementedError

    def step_command(self, python: str) -> list[str]:
        return list(self.command) if self.command else [python, "-m", ENTRYPOINT_MODULE]


class LocalLauncher(TrainingLauncher):
    """A subprocess on this machine (the default; CPU or a local GPU)."""

    python: str = sys.executable

    def launch(
        self,
        context: dg.AssetExecutionContext,
        *,
        job: TrainingJob,
        workdir: Path,
        identity: str | None = None,
        store: ArtifactStore | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        workdir.mkdir(parents=True, exist_ok=True)
        return dg.PipesSubprocessClient(cwd=str(workdir)).run(
            context=context,
            command=self.step_command(self.python),
            extras={"job": job.to_dict()},
        )


def staging_plan(job: Any) -> dict[str, list[str]]:
    """Absolute paths in the job, split into inputs (exist here: uploaded) and outputs (values of keys whose name
    contains ``output``: downloaded after the step)."""
    inputs: list[str] = []
    outputs: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value.startswith("/") and "\n" not in value:
            path = str(Path(value).resolve())
            if "output" in key.lower():
                outputs.append(path)
            elif Path(path).exists():
                inputs.append(path)

    walk(job)
    return {"inputs": sorted(set(inputs)), "outputs": sorted(set(outputs))}
