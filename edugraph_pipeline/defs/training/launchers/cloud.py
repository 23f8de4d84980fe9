"""What the two Google Cloud launchers (`gcp`: a Compute Engine VM, `vertex`: a Vertex AI CustomJob) share: the GCS
layout of a job, inputs staged once, the ledger of machines a run used, and the metadata it adds up to.

``gs://<bucket>/<prefix>/``

* ``work/<job key>/inputs/``: the job's inputs (``files<absolute path>``) and ``manifest.json``, written last; a
  later attempt, zone or machine whose inputs match the manifest uploads nothing;
* ``work/<job key>/checkpoints/``: the Trainer's checkpoints, synced by the step (`training/checkpoint_sync.py`);
* ``work/<job key>/attempts/<run id>/<attempt>.json``: one record per machine (zone, spot, start, end, outcome);
* ``runs/<run id>/<attempt>/``: one attempt's Pipes context and messages, logs, outputs and ``status.json``.

With the artifact store in GCS (``EDUGRAPH_DATA_DIR=gs://...``) nothing of the artifacts goes through this host:
an input that is a committed store version is read by the step from its version prefix (``store_inputs``, checked
against the manifest's sizes and sha256), and the publication's files are written by the step straight into the
store's ``.versions/<key>/<id>/`` (``store_outputs``); the step reports them in ``runs/.../outputs.json`` and
`adopt_outputs` hands them to the open publication, whose commit checks them against the bucket.

The job key is the asset's job identity (the job and the versions of its inputs), so the same job on the same
inputs finds its checkpoints whichever run, attempt or machine asks; never a per-attempt id.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

import dagster as dg

from edugraph_pipeline.defs.training.launchers import retry
from edugraph_pipeline.defs.training.launchers.base import StepFailed, StepPreempted, staging_plan
from edugraph_pipeline.store_gcs import remote_source, remote_staging
from edugraph_pipeline.training.checkpoint_sync import CheckpointStore
from edugraph_pipeline.training.job import TrainingJob
from edugraph_pipeline.training.remote import blob_name, upload_tree

PREEMPTED = "preempted"
NO_CAPACITY = "no_capacity"
SUCCEEDED = "succeeded"
FAILED = "failed"


def job_key(job: TrainingJob, identity: str | None) -> str:
    """The folder name of a job's stable GCS state: its identity, or a hash of what decides its result."""
    if identity:
        return identity[:32]
    return hashlib.sha256(json.dumps(job.decisive(), sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CloudLayout:
    bucket: str
    prefix: str
    key: str
    run_id: str
    attempt: str

    @property
    def work_root(self) -> str:
        return f"{self.prefix.strip('/')}/work/{self.key}".lstrip("/")

    @property
    def inputs_root(self) -> str:
        return f"{self.work_root}/inputs"

    @property
    def checkpoints_root(self) -> str:
        return f"{self.work_root}/checkpoints"

    @property
    def run_root(self) -> str:
        return f"{self.prefix.strip('/')}/runs/{self.run_id}/{self.attempt}".lstrip("/")


def cloud_staging(job: TrainingJob, layout: CloudLayout) -> dict:
    """The staging plan the in-container wrapper follows: the job's work dir is scratch (created empty on the
    machine: its checkpoints come from GCS), never uploaded from this host."""
    plan = staging_plan(job.to_dict())
    scratch = [str(Path(job.work_dir).resolve())] if job.work_dir else []
    inputs = [p for p in plan["inputs"] if not any(p == s or p.startswith(s + "/") for s in scratch)]
    store_inputs = _store_inputs(job.to_dict())
    store_outputs = [{"path": p, "url": remote.versions_url} for p in plan["outputs"] if (remote := remote_staging(p))]
    return {
        "bucket": layout.bucket,
        "root": layout.run_root,
        "inputs_root": layout.inputs_root,
        "inputs": [p for p in inputs if remote_source(p) is None],  # uploaded by `stage_inputs`
        "outputs": [p for p in plan["outputs"] if remote_staging(p) is None],  # downloaded after the step
        "store_inputs": store_inputs,
        "store_outputs": store_outputs,
        "scratch": scratch,
        "checkpoints": f"gs://{layout.bucket}/{layout.checkpoints_root}" if job.config is not None else None,
    }


def _store_inputs(job: dict) -> list[dict]:
    """Every path the job names (as it names it: the step's paths are rewritten by exact string) that lies in a
    committed version of a GCS artifact store: ``{"path", "url", "files"}`` for the step to read from the bucket."""
    found: dict[str, dict] = {}

    def walk(value, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value.startswith("/") and "output" not in key.lower():
            source = remote_source(value) if Path(value).exists() else None
            if source is not None:
                found[value] = {"path": value, **source}

    walk(job)
    return list(found.values())


def adopt_outputs(bucket, staging: dict, log) -> None:
    """Hand what the step wrote into the store (``<root>/outputs.json``) to the open publications, and write the
    small files it returned inline (the result file the asset reads) into their local staging folders."""
    if not staging.get("store_outputs"):
        return
    blob = bucket.blob(f"{staging['root']}/outputs.json")
    if not blob.exists():
        raise StepFailed(f"the training step exited 0 without reporting its outputs (gs://{bucket.name}/{blob.name})")
    report = json.loads(blob.download_as_bytes())
    for output in staging["store_outputs"]:
        written = report.get(output["path"])
        publication = remote_staging(output["path"])
        if written is None or publication is None:
            raise StepFailed(f"the training step reported no files for {output['path']} ({output['url']})")
        publication.adopt(written["version"], written["files"])
        for relative, text in written.get("inline", {}).items():
            target = Path(output["path"]) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        size = sum(entry["size"] for entry in written["files"])
        log(f"Outputs written by the step to {output['url']}/{written['version']} ({len(written['files'])} files, "
            f"{size} bytes): committed by the publication, not downloaded")


def _manifest(paths: list[str]) -> dict:
    manifest = {}
    for path in paths:
        base = Path(path)
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        manifest[path] = {
            ("" if f == base else f.relative_to(base).as_posix()): [f.stat().st_size, f.stat().st_mtime_ns] for f in files
        }
    return manifest


def stage_inputs(bucket, layout: CloudLayout, paths: list[str], log) -> int:
    """Upload the inputs unless the manifest in GCS already describes these very files; returns files uploaded."""
    if not paths:
        return 0  # every input is read from the artifact store
    manifest = _manifest(paths)
    marker = bucket.blob(f"{layout.inputs_root}/manifest.json")
    if marker.exists() and json.loads(marker.download_as_bytes()) == manifest:
        log(f"Inputs already staged in gs://{layout.bucket}/{layout.inputs_root} ({len(paths)} paths): not uploading again")
        return 0
    count = 0
    for path in paths:
        uploaded = upload_tree(bucket, layout.inputs_root, path)
        count += uploaded
        log(f"Staged {path} ({uploaded} files) to gs://{layout.bucket}/{blob_name(layout.inputs_root, path)}")
    marker.upload_from_string(json.dumps(manifest), content_type="application/json")
    return count


@dataclass
class MachineRecord:
    """One machine (VM or Vertex job) a run used."""

    attempt: str
    machine: str
    zone: str
    spot: bool
    accelerators: int
    started: float = field(default_factory=time.time)
    ended: float | None = None
    outcome: str | None = None

    @property
    def gpu_hours(self) -> float:
        return ((self.ended or time.time()) - self.started) * self.accelerators / 3600


class Ledger:
    """The machines of one Dagster run for one job, kept in GCS so every retry attempt sees the ones before it."""

    def __init__(self, bucket, layout: CloudLayout) -> None:
        self.bucket, self.layout = bucket, layout
        self.folder = f"{layout.work_root}/attempts/{layout.run_id}"

    def records(self) -> list[MachineRecord]:
        blobs = self.bucket.client.list_blobs(self.bucket.name, prefix=self.folder + "/")
        records = [MachineRecord(**json.loads(b.download_as_bytes())) for b in blobs if b.name.endswith(".json")]
        return sorted(records, key=lambda r: r.started)

    def write(self, record: MachineRecord) -> None:
        self.bucket.blob(f"{self.folder}/{record.attempt}-{record.machine}.json").upload_from_string(
            json.dumps(asdict(record)), content_type="application/json"
        )

    def interruptions(self) -> int:
        return sum(r.outcome in (PREEMPTED, NO_CAPACITY) for r in self.records())


def resume_line(storage, layout: CloudLayout, interruptions: int, limit: int) -> str | None:
    """"resuming from checkpoint-400 after preemption 2 of 5" (None on a first attempt)."""
    if interruptions == 0:
        return None
    newest = CheckpointStore(storage, layout.bucket, layout.checkpoints_root).newest()
    where = f"resuming from checkpoint-{newest.step}" if newest else "starting from step 0 (no checkpoint was synced yet)"
    return f"{where} after preemption {interruptions} of {limit}"


def cost_metadata(records: list[MachineRecord], prefix: str) -> dict:
    """What the run's machines add up to: recorded in the materialization (`<prefix>_...`)."""
    return {
        f"{prefix}_preemptions": sum(r.outcome == PREEMPTED for r in records),
        f"{prefix}_machines": sum(r.outcome != NO_CAPACITY for r in records),
        f"{prefix}_zones": ", ".join(dict.fromkeys(r.zone for r in records if r.outcome != NO_CAPACITY)),
        f"{prefix}_gpu_hours": round(sum(r.gpu_hours for r in records if r.outcome != NO_CAPACITY), 4),
        f"{prefix}_spot_machines": sum(r.spot for r in records if r.outcome != NO_CAPACITY),
    }


@dataclass
class Attempt:
    """One machine's try at a job: where its files go, the machines before it, and whether it may be spot."""

    layout: CloudLayout
    ledger: Ledger
    staging: dict
    interrupted: int  # preemptions (and capacity-less attempts) so far in this run
    limit: int  # preemptions the run may survive
    spot: bool

    @property
    def machine_name(self) -> str:
        return f"edugraph-train-{self.layout.run_id[:8]}-{self.layout.attempt}".lower()

    def preempted(self, context: dg.AssetExecutionContext, message: str, machine: str, detail: str | None = None) -> NoReturn:
        """Report a preemption: a retryable `StepPreempted`, or `StepFailed` past the run's limit."""
        context.log.warning(f"{message} ({detail})" if detail else message)
        if self.interrupted + 1 > self.limit:
            raise StepFailed(f"{message}: giving up ({retry.MAX_PREEMPTIONS_ENV}={self.limit})")
        raise StepPreempted(f"{message}: a new {machine} resumes from the last checkpoint synced to GCS")


def begin_attempt(
    context: dg.AssetExecutionContext,
    storage,
    *,
    bucket: str,
    prefix: str,
    job: TrainingJob,
    identity: str | None,
    spot: bool,
    max_preemptions: int | None,
    on_demand_after: int | None,
) -> Attempt:
    """Count the run's earlier machines, decide spot or on-demand, stage the inputs once, log where it resumes."""
    layout = CloudLayout(bucket, prefix, job_key(job, identity), context.run.run_id, secrets.token_hex(3))
    limit = max_preemptions if max_preemptions is not None else retry.max_preemptions()
    on_demand = on_demand_after if on_demand_after is not None else retry.on_demand_after()
    ledger = Ledger(storage.bucket(bucket), layout)
    interrupted = ledger.interruptions()
    use_spot = spot and not (on_demand is not None and interrupted >= on_demand)
    if spot and not use_spot:
        context.log.info(f"{interrupted} preemptions so far (on-demand after {on_demand}): this machine is on-demand")
    staging = cloud_staging(job, layout)
    stage_inputs(storage.bucket(bucket), layout, staging["inputs"], context.log.info)
    line = resume_line(storage, layout, interrupted, limit)
    if line:
        context.log.info(line)
    return Attempt(layout, ledger, staging, interrupted, limit, use_spot)


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
        yield session, {**env, **session.get_bootstrap_env_vars(), "EDUGRAPH_PIPES_UPLOAD_INTERVAL": str(interval)}


def finish_attempt(context: dg.AssetExecutionContext, storage, attempt: Attempt, metadata_prefix: str) -> None:
    """Bring back what the step wrote outside a GCS store, hand what it wrote into one to the publication, and
    record what the run's machines cost."""
    from edugraph_pipeline.training.remote import download_tree

    bucket, run_root = attempt.layout.bucket, attempt.layout.run_root
    for path in attempt.staging["outputs"]:
        count = download_tree(storage, bucket, run_root, path)
        context.log.info(f"Downloaded {count} files to {path}")
    adopt_outputs(storage.bucket(bucket), attempt.staging, context.log.info)  # a GCS store: nothing to fetch
    context.add_asset_metadata(cost_metadata(attempt.ledger.records(), metadata_prefix))
