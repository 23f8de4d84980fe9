"""What the two Google Cloud launchers (`gcp`: a Compute Engine VM, `vertex`: a Vertex AI CustomJob) share: their
settings, and one attempt around the machine each of them runs - the ledger of the run's machines, spot or
on-demand, the inputs staged once, the resume line, a GCS Pipes session, the step's outputs handed back, the cost
metadata (`CloudLauncher.launch`). The bucket layout is `cloud/work.py`'s; a subclass only runs its machine.

With the artifact store in GCS (``EDUGRAPH_DATA_DIR=gs://...``) the launcher is handed the store, and nothing of
the artifacts goes through this host: an input that is a committed store version is read by the step from its
version prefix (``store_inputs``, `store.remote_source`), and the publication's files are written by the step
straight into the store's ``.versions/<key>/<id>/`` (``store_outputs``, `store.remote_staging`); the step reports
them in ``runs/.../outputs.json`` and `adopt_outputs` hands them to the open publication, whose commit checks them
against the bucket.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NoReturn

import dagster as dg
from pydantic import Field

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import accelerators, gcs
from edugraph_pipeline.cloud.work import CloudLayout, Ledger, cost_metadata, job_key, stage_inputs
from edugraph_pipeline.defs.training.launchers.base import (
    REMOTE_MODULE,
    StepFailed,
    StepPreempted,
    TrainingLauncher,
    staging_plan,
)
from edugraph_pipeline.defs.training.launchers.defaults import (
    DEFAULT_IMAGE,
    default_flag,
    default_int,
    default_number,
)
from edugraph_pipeline.defs.training.launchers.retry import (
    MAX_PREEMPTIONS_ENV,
    checked_max_preemptions,
    checked_on_demand_after,
)
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline.training.checkpoint_sync import CheckpointStore
from edugraph_pipeline.training.job import TrainingJob

OUTPUTS_REPORT = "outputs.json"


@dataclass
class Attempt:
    """One machine's try at a job: where its files go, the machines before it, and whether it may be spot."""

    layout: CloudLayout
    ledger: Ledger
    staging: dict
    interrupted: int  # preemptions (and capacity-less attempts) so far in this run
    limit: int  # preemptions the run may survive
    spot: bool

    def preempted(self, context: dg.AssetExecutionContext, message: str, machine: str, detail: str | None = None) -> NoReturn:
        """Report a preemption: a retryable `StepPreempted`, or `StepFailed` past the run's limit."""
        context.log.warning(f"{message} ({detail})" if detail else message)
        if self.interrupted + 1 > self.limit:
            raise StepFailed(f"{message}: giving up ({MAX_PREEMPTIONS_ENV}={self.limit})")
        raise StepPreempted(f"{message}: a new {machine} resumes from the last checkpoint synced to GCS")


class CloudLauncher(TrainingLauncher):
    """The settings both cloud launchers share, and their attempt (`launch`); a subclass runs its machine
    (`run_machine`). Every default is its setting's (settings.py)."""

    metadata_prefix: ClassVar[str] = ""
    machine_kind: ClassVar[str] = "machine"

    project: str
    bucket: str = Field(description="Bucket for staged data, results, logs and Pipes messages.")
    prefix: str = Field(default=settings.default("EDUGRAPH_GCS_PREFIX"), description="Folder inside the bucket.")
    image: str = Field(default=DEFAULT_IMAGE, description="Training image (an Artifact Registry path).")
    machine_type: str = settings.default("EDUGRAPH_GCP_MACHINE_TYPE")
    accelerator_type: str = settings.default("EDUGRAPH_GCP_ACCELERATOR")
    accelerator_count: int = default_int("EDUGRAPH_GCP_ACCELERATOR_COUNT")
    boot_disk_gb: int = default_int("EDUGRAPH_GCP_BOOT_DISK_GB")
    service_account: str | None = Field(default=None, description="Service account of the machine (None: the default).")
    spot: bool = Field(default=default_flag("EDUGRAPH_GCP_SPOT"), description="Spot machines (deleted on preemption).")
    max_run_hours: float = Field(default=default_number("EDUGRAPH_GCP_MAX_RUN_HOURS"),
                                 description="The machine is deleted (the job cancelled) after this long.")
    max_preemptions: int = Field(default=default_int("EDUGRAPH_GCP_MAX_PREEMPTIONS"),
                                 description="Preemptions a step survives (0 to the retry policy's ceiling, 20).")
    on_demand_after: int | None = Field(
        default=None, description="After this many preemptions the next machine is on-demand (None: always spot)."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra (non-secret) container environment.")
    labels: dict[str, str] = Field(default_factory=dict)
    python: str = "python"
    message_interval_s: float = 10.0

    def launch(
        self,
        context: dg.AssetExecutionContext,
        *,
        job: TrainingJob,
        workdir: Path,
        identity: str | None = None,
        store: ArtifactStore | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        if self.accelerator_count > 0:
            try:
                accelerators.compute_name(self.accelerator_type)
            except ValueError as error:  # before anything is staged or paid for
                raise StepFailed(str(error)) from None
        storage = gcs.client(self.project)
        attempt = self._begin(context, storage, job, identity, store)
        with gcs_pipes_session(context, storage, attempt, job, interval=self.message_interval_s, env=self.env) as (
            session,
            container_env,
        ):
            self.run_machine(context, storage, attempt, container_env, self.wrapper_command())
        finish_attempt(context, storage, attempt, store, self.metadata_prefix)
        return dg.PipesClientCompletedInvocation(session)

    def wrapper_command(self) -> list[str]:
        """What the machine runs: the in-machine wrapper around the step (`training/remote.py`)."""
        return [self.python, "-m", REMOTE_MODULE, "--message-interval", f"{self.message_interval_s:g}", "--",
                *self.step_command(self.python)]

    def run_machine(self, context, storage, attempt: Attempt, container_env: dict, command: list[str]) -> None:
        """Run `command` with `container_env` on one machine until the step reported; raise `StepFailed` for the
        step's own failure, `Attempt.preempted` for a machine taken back; always release the machine."""
        raise NotImplementedError

    def _begin(self, context, storage, job: TrainingJob, identity: str | None, store: ArtifactStore | None) -> Attempt:
        """Count the run's earlier machines, decide spot or on-demand, stage the inputs once, log where it resumes."""
        layout = CloudLayout(self.bucket, self.prefix, job_key(identity, job.decisive()), context.run.run_id,
                             secrets.token_hex(3))
        limit = checked_max_preemptions(self.max_preemptions)
        on_demand = checked_on_demand_after(self.on_demand_after)
        bucket = storage.bucket(self.bucket)
        ledger = Ledger(bucket, layout)
        interrupted = ledger.interruptions()
        use_spot = self.spot and not (on_demand is not None and interrupted >= on_demand)
        if self.spot and not use_spot:
            context.log.info(f"{interrupted} preemptions so far (on-demand after {on_demand}): this {self.machine_kind} "
                             "is on-demand")
        staging = cloud_staging(job, layout, store)
        stage_inputs(bucket, layout, staging["inputs"], context.log.info)
        line = resume_line(storage, layout, interrupted, limit)
        if line:
            context.log.info(line)
        return Attempt(layout, ledger, staging, interrupted, limit, use_spot)


def cloud_staging(job: TrainingJob, layout: CloudLayout, store: ArtifactStore | None) -> dict:
    """The staging plan the in-machine wrapper follows. The job's work dir is scratch (created empty on the
    machine: its checkpoints come from GCS), never uploaded from this host; paths `store` says the bucket holds
    (a GCS store's committed versions, its open publications) are read and written there by the step."""
    plan = staging_plan(job.to_dict())
    scratch = [str(Path(job.work_dir).resolve())] if job.work_dir else []
    inputs = [p for p in plan["inputs"] if not any(p == s or p.startswith(s + "/") for s in scratch)]
    publications = {p: store.remote_staging(p) if store is not None else None for p in plan["outputs"]}
    return {
        "bucket": layout.bucket,
        "root": layout.run_root,
        "inputs_root": layout.inputs_root,
        "inputs": [p for p in inputs if store is None or store.remote_source(p) is None],  # uploaded by `stage_inputs`
        "outputs": [p for p, remote in publications.items() if remote is None],  # downloaded after the step
        "store_inputs": _store_inputs(job.to_dict(), store) if store is not None else [],
        "store_outputs": [{"path": p, "url": remote.versions_url} for p, remote in publications.items() if remote],
        "scratch": scratch,
        "checkpoints": layout.checkpoints_url if job.config is not None else None,
        "bases": layout.bases_url if job.config is not None else None,
    }


def _store_inputs(job: dict, store: ArtifactStore) -> list[dict]:
    """Every path the job names (as it names it: the step's paths are rewritten by exact string) that lies in a
    committed version of the store: ``{"path", "url", "files"}`` for the step to read from the bucket."""
    found: dict[str, dict] = {}

    def walk(value, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value.startswith("/") and "output" not in key.lower():
            source = store.remote_source(value) if Path(value).exists() else None
            if source is not None:
                found[value] = {"path": value, **source}

    walk(job)
    return list(found.values())


def resume_line(storage, layout: CloudLayout, interruptions: int, limit: int) -> str | None:
    """"resuming from checkpoint-400 after preemption 2 of 5" (None on a first attempt)."""
    if interruptions == 0:
        return None
    newest = CheckpointStore(storage, layout.bucket, layout.checkpoints_root).newest()
    where = f"resuming from checkpoint-{newest.step}" if newest else "starting from step 0 (no checkpoint was synced yet)"
    return f"{where} after preemption {interruptions} of {limit}"


@contextmanager
def gcs_pipes_session(
    context: dg.AssetExecutionContext, storage, attempt: Attempt, job: TrainingJob, *, interval: float, env: dict
) -> Iterator[tuple[dg.PipesSession, dict]]:
    """A Pipes session whose context and messages live under the attempt's run folder; yields it with the step's
    environment (the bootstrap variables added to `env`)."""
    from dagster_gcp.pipes import PipesGCSContextInjector, PipesGCSMessageReader
    from dagster_pipes import PipesBlobStoreMessageWriter

    bucket, run_root = attempt.layout.bucket, attempt.layout.run_root

    class RunMessageReader(PipesGCSMessageReader):  # messages under the run's folder instead of the bucket root
        @contextmanager
        def get_params(self):
            yield {
                "bucket": bucket,
                "key_prefix": f"{run_root}/pipes/messages",
                PipesBlobStoreMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: False,
            }

    with dg.open_pipes_session(
        context=context,
        context_injector=PipesGCSContextInjector(bucket=bucket, client=storage, key_prefix=f"{run_root}/pipes/context-"),
        message_reader=RunMessageReader(bucket=bucket, client=storage, interval=interval),
        extras={"job": job.to_dict(), "edugraph_staging": attempt.staging},
    ) as session:
        yield session, {**env, **session.get_bootstrap_env_vars()}


def adopt_outputs(bucket, staging: dict, store: ArtifactStore | None, log) -> None:
    """Hand what the step wrote into the store (``<root>/outputs.json``) to the open publications, and write the
    small files it returned inline (the result file the asset reads) into their local staging folders."""
    if not staging.get("store_outputs"):
        return
    blob = bucket.blob(f"{staging['root']}/{OUTPUTS_REPORT}")
    where = f"gs://{bucket.name}/{blob.name}"
    if not blob.exists():
        raise StepFailed(f"the training step exited 0 without reporting its outputs ({where})")
    try:
        report = json.loads(blob.download_as_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StepFailed(f"{where} is not the step's outputs report: not JSON ({error})") from None
    for output in staging["store_outputs"]:
        written = report.get(output["path"]) if isinstance(report, dict) else None
        publication = store.remote_staging(output["path"]) if store is not None else None
        if not isinstance(written, dict) or publication is None:
            raise StepFailed(f"the training step reported no files for {output['path']} ({output['url']})")
        publication.adopt(written.get("version"), written.get("files"))
        for relative, text in (written.get("inline") or {}).items():
            target = Path(output["path"]) / gcs.inside(relative, f"{where}: inline")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        size = sum(entry["size"] for entry in publication.adopted[1])
        log(f"Outputs written by the step to {output['url']}/{written['version']} ({len(publication.adopted[1])} "
            f"files, {size} bytes): committed by the publication, not downloaded")


def finish_attempt(context: dg.AssetExecutionContext, storage, attempt: Attempt, store: ArtifactStore | None,
                   metadata_prefix: str) -> None:
    """Bring back what the step wrote outside a GCS store, hand what it wrote into one to the publication, and
    record what the run's machines cost."""
    bucket, run_root = attempt.layout.bucket, attempt.layout.run_root
    for path in attempt.staging["outputs"]:
        count = gcs.download_tree(storage, bucket, run_root, path)
        context.log.info(f"Downloaded {count} files to {path}")
    adopt_outputs(storage.bucket(bucket), attempt.staging, store, context.log.info)  # a GCS store: nothing to fetch
    context.add_asset_metadata(cost_metadata(attempt.ledger.records(), metadata_prefix))
