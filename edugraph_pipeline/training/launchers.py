"""Where the training step runs: a subprocess here, the GPU Docker image, or a Google Cloud GPU machine.

Every launcher runs the same entry point (``python -m edugraph_pipeline.training.entrypoint``) with the same
job description and brings its logs, metrics and materialization back to Dagster through Dagster Pipes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg

ENTRYPOINT_MODULE = "edugraph_pipeline.training.entrypoint"


class TrainingLauncher(dg.ConfigurableResource):
    """Base: `launch` runs one training job and returns the Pipes invocation to read results from."""

    def launch(
        self, context: dg.AssetExecutionContext, *, job: dict, workdir: Path
    ) -> dg.PipesClientCompletedInvocation:
        raise NotImplementedError


class LocalLauncher(TrainingLauncher):
    """A subprocess on this machine (the default; CPU or a local GPU)."""

    python: str = sys.executable

    def launch(
        self, context: dg.AssetExecutionContext, *, job: dict, workdir: Path
    ) -> dg.PipesClientCompletedInvocation:
        workdir.mkdir(parents=True, exist_ok=True)
        return dg.PipesSubprocessClient(cwd=str(workdir)).run(
            context=context,
            command=[self.python, "-m", ENTRYPOINT_MODULE],
            extras={"job": job},
        )
