"""A training job's folders in the launchers' bucket, shared by the gcp and vertex launchers:

``gs://<bucket>/<prefix>/``

* ``work/<job key>/inputs/``: the job's inputs (``files<absolute path>``) and ``manifest.json``, written last; a
  later attempt, zone or machine whose inputs match the manifest uploads nothing (`stage_inputs`);
* ``work/<job key>/checkpoints/``: the Trainer's checkpoints, synced by the step (`training/checkpoint_sync.py`);
* ``work/<job key>/bases/``: the base model's Hub snapshot (``base-snapshot/``) and the stage-1-merged base
  (``merged-base/``), synced by the first machine that made them, restored by the ones after it (the same module);
* ``work/<job key>/attempts/<run id>/<attempt>-<machine>.json``: one record per machine (`Ledger`);
* ``runs/<run id>/<attempt>/``: one attempt's Pipes context and messages, logs, outputs and ``status.json``.

The job key is the job's identity (the job and the versions of its inputs), so the same job on the same inputs
finds its checkpoints whichever run, attempt or machine asks; never a per-attempt id.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edugraph_pipeline.cloud.gcs import staged_name, upload_tree

PREEMPTED = "preempted"
NO_CAPACITY = "no_capacity"
SUCCEEDED = "succeeded"
FAILED = "failed"
STATUS_FILE = "status.json"  # the step's exit status, written last by the in-machine wrapper
STEP_LOG = "logs/step.log"


def job_key(identity: str | None, decisive: dict) -> str:
    """The folder name of a job's stable state: its identity, or a hash of what decides its result."""
    if identity:
        return identity[:32]
    return hashlib.sha256(json.dumps(decisive, sort_keys=True, default=str).encode()).hexdigest()[:32]


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
    def checkpoints_url(self) -> str:
        return f"gs://{self.bucket}/{self.checkpoints_root}"

    @property
    def bases_url(self) -> str:
        return f"gs://{self.bucket}/{self.work_root}/bases"

    @property
    def run_root(self) -> str:
        return f"{self.prefix.strip('/')}/runs/{self.run_id}/{self.attempt}".lstrip("/")

    @property
    def machine_name(self) -> str:
        return f"edugraph-train-{self.run_id[:8]}-{self.attempt}".lower()


def input_manifest(paths: list[str]) -> dict:
    """What a set of local inputs is: every file's size and modification time, by path."""
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
    manifest = input_manifest(paths)
    marker = bucket.blob(f"{layout.inputs_root}/manifest.json")
    if marker.exists() and json.loads(marker.download_as_bytes()) == manifest:
        log(f"Inputs already staged in gs://{layout.bucket}/{layout.inputs_root} ({len(paths)} paths): not uploading again")
        return 0
    count = 0
    for path in paths:
        uploaded = upload_tree(bucket, layout.inputs_root, path)
        count += uploaded
        log(f"Staged {path} ({uploaded} files) to gs://{layout.bucket}/{staged_name(layout.inputs_root, path)}")
    marker.upload_from_string(json.dumps(manifest), content_type="application/json")
    return count


def read_status(bucket, layout: CloudLayout) -> dict | None:
    """The step's ``status.json`` (``{"exit_code", "error"}``), or None while it has not reported; a status that
    is not such an object counts as a failure of the step, with what was found."""
    blob = bucket.blob(f"{layout.run_root}/{STATUS_FILE}")
    if not blob.exists():
        return None
    data = blob.download_as_bytes()
    try:
        status = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        status = None
    if not isinstance(status, dict) or not isinstance(status.get("exit_code"), (int, type(None))):
        return {"exit_code": -1, "error": f"gs://{bucket.name}/{blob.name} is not a step status: {data[:200]!r}"}
    return status


def text_tail(bucket, name: str, lines: int) -> str | None:
    """The last `lines` lines of a text object, or None when it does not exist."""
    blob = bucket.blob(name)
    if not blob.exists():
        return None
    text = blob.download_as_bytes().decode("utf-8", errors="replace")
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


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


def cost_metadata(records: list[MachineRecord], prefix: str) -> dict:
    """What the run's machines add up to: recorded in the materialization (`<prefix>_...`)."""
    return {
        f"{prefix}_preemptions": sum(r.outcome == PREEMPTED for r in records),
        f"{prefix}_machines": sum(r.outcome != NO_CAPACITY for r in records),
        f"{prefix}_zones": ", ".join(dict.fromkeys(r.zone for r in records if r.outcome != NO_CAPACITY)),
        f"{prefix}_gpu_hours": round(sum(r.gpu_hours for r in records if r.outcome != NO_CAPACITY), 4),
        f"{prefix}_spot_machines": sum(r.spot for r in records if r.outcome != NO_CAPACITY),
    }
