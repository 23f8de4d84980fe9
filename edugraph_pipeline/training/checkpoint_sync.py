"""Checkpoints that outlive the machine: every Trainer save is copied to GCS, and a new machine restores the newest.

Layout under ``gs://<bucket>/<root>/`` (the launcher's ``<prefix>/work/<job identity>/checkpoints``: stable per job,
never per attempt, so any VM or Vertex worker that runs the same job finds them)::

    checkpoint-200/<the Trainer's files>
    checkpoint-200/_EDUGRAPH_COMPLETE.json   {"step": 200, "files": {"<relative path>": <size>, ...}}

The marker is written after every file of its checkpoint, and lists them with their sizes: a checkpoint without a
marker, or with a file missing or of another size (an upload cut short by a preemption), is never restored.
Once a new checkpoint is complete, older ones beyond `keep` are deleted (newest first kept).

A marker is read from a bucket, so it is outside input: one that is not JSON, has fields of the wrong type, or
lists a file outside its checkpoint folder (``../x``, an absolute path) is refused with an error naming the marker
and the field, and nothing of it is downloaded.

The step turns it on when the launcher's wrapper (`training/remote.py`) sets ``EDUGRAPH_CHECKPOINT_SYNC`` to
``gs://<bucket>/<root>``: `synced_checkpoints` restores into the Trainer's checkpoint folder, then returns the
`TrainerCallback` that uploads each save. Only google-cloud-storage and the standard library (transformers is
imported lazily, inside the step): no dagster.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import gcs

SYNC_ENV = "EDUGRAPH_CHECKPOINT_SYNC"
MARKER = "_EDUGRAPH_COMPLETE.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


class CheckpointMarkerError(ValueError):
    """A checkpoint's marker in GCS is not one this module wrote (the message names the marker and the field)."""


@dataclass(frozen=True)
class RemoteCheckpoint:
    step: int
    name: str  # checkpoint-<step>
    files: dict[str, int]  # relative path -> size


class CheckpointStore:
    """The checkpoints of one job in one GCS folder (`client`: a google-cloud-storage client)."""

    def __init__(self, client, bucket: str, root: str, keep: int = 2) -> None:
        self.client, self.bucket_name, self.root, self.keep = client, bucket, root.strip("/"), keep
        self.bucket = client.bucket(bucket)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket_name}/{self.root}"

    def _blobs(self) -> dict[str, int]:
        prefix = self.root + "/"
        return {b.name[len(prefix) :]: int(b.size or 0) for b in self.client.list_blobs(self.bucket_name, prefix=prefix)}

    def complete(self) -> list[RemoteCheckpoint]:
        """Every complete checkpoint, oldest first: its marker exists and every file it lists has its size."""
        blobs = self._blobs()
        found = []
        for name in blobs:
            folder, _, leaf = name.partition("/")
            match = _CHECKPOINT.fullmatch(folder)
            if leaf != MARKER or not match:
                continue
            where = f"{self.uri}/{name}"
            files = _marker_files(self.bucket.blob(f"{self.root}/{name}").download_as_bytes(), int(match.group(1)), where)
            if files and all(blobs.get(f"{folder}/{rel}") == size for rel, size in files.items()):
                found.append(RemoteCheckpoint(step=int(match.group(1)), name=folder, files=files))
        return sorted(found, key=lambda c: c.step)

    def newest(self) -> RemoteCheckpoint | None:
        complete = self.complete()
        return complete[-1] if complete else None

    def upload(self, folder: Path) -> RemoteCheckpoint:
        """Upload the checkpoint folder `folder` (``checkpoint-N``): its files, then the marker; then prune."""
        match = _CHECKPOINT.fullmatch(folder.name)
        if not match or not folder.is_dir():
            raise ValueError(f"{folder}: not a Trainer checkpoint folder (checkpoint-<step>)")
        files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
        for rel in files:
            self.bucket.blob(f"{self.root}/{folder.name}/{rel}").upload_from_filename(str(folder / rel))
        marker = {"step": int(match.group(1)), "files": files}
        self.bucket.blob(f"{self.root}/{folder.name}/{MARKER}").upload_from_string(
            json.dumps(marker), content_type="application/json"
        )
        self.prune()
        return RemoteCheckpoint(step=marker["step"], name=folder.name, files=files)

    def prune(self) -> None:
        """Delete all but the newest `keep` complete checkpoints, and incomplete ones older than the newest."""
        complete = self.complete()
        if not complete:
            return
        kept = {c.name for c in complete[-self.keep :]}
        newest = complete[-1].step
        for name in self._blobs():
            folder = name.partition("/")[0]
            match = _CHECKPOINT.fullmatch(folder)
            if match and folder not in kept and int(match.group(1)) < newest:
                self.bucket.blob(f"{self.root}/{name}").delete()

    def restore(self, checkpoints_dir: Path) -> RemoteCheckpoint | None:
        """Download the newest complete checkpoint into `checkpoints_dir/checkpoint-N` (written beside it first and
        moved in whole, so the Trainer never sees half a checkpoint); None when there is none."""
        newest = self.newest()
        if newest is None:
            return None
        target = checkpoints_dir / newest.name
        if target.is_dir() and all((target / rel).is_file() for rel in newest.files):
            return newest  # this machine has it already
        partial = checkpoints_dir / f".{newest.name}.restoring"
        shutil.rmtree(partial, ignore_errors=True)
        for rel in newest.files:  # each checked by `_marker_files` to lie inside the checkpoint folder
            destination = partial / rel
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.bucket.blob(f"{self.root}/{newest.name}/{rel}").download_to_filename(str(destination))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return newest


def _trainer_callback(store: CheckpointStore, log_fn: Callable[[str], None]):
    from transformers import TrainerCallback

    class CheckpointSync(TrainerCallback):
        """Uploads each checkpoint right after the Trainer saved it (synchronously: the next steps must not run
        ahead of the only copy that survives a preemption)."""

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                uploaded = store.upload(folder)
                log_fn(f"checkpoint-{uploaded.step} synced to {store.uri}")

    return CheckpointSync()


def synced_checkpoints(checkpoints_dir: Path, log_fn: Callable[[str], None], *, sync_to: str | None = None) -> list:
    """With a sync folder (`sync_to`, default ``EDUGRAPH_CHECKPOINT_SYNC``): restore the newest complete remote
    checkpoint into `checkpoints_dir` and return ``[callback]`` that uploads every later save; none: ``[]`` (local
    runs keep checkpoints on disk)."""
    uri = (settings.setting(SYNC_ENV) if sync_to is None else sync_to).strip()
    if not uri:
        return []
    bucket, root = gcs.parse_gs_url(uri, named=SYNC_ENV, folder_required=True)
    store = CheckpointStore(gcs.client(), bucket, root)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    restored = store.restore(checkpoints_dir)
    if restored is None:
        log_fn(f"no synced checkpoint in {store.uri}: training from step 0")
    else:
        log_fn(f"resumed from checkpoint-{restored.step} (restored from {store.uri})")
    return [_trainer_callback(store, log_fn)]


def _marker_files(data: bytes, step: int, where: str) -> dict[str, int]:
    """The files a marker lists (relative path -> size), each inside its checkpoint folder; else an error."""
    try:
        marker = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointMarkerError(f"{where}: not a checkpoint marker: not JSON ({error})") from None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), dict):
        raise CheckpointMarkerError(f"{where}: not a checkpoint marker: field 'files' must be an object of sizes")
    if marker.get("step") != step:
        raise CheckpointMarkerError(f"{where}: field 'step' is {marker.get('step')!r}, expected {step} (its folder)")
    files = {}
    for relative, size in marker["files"].items():
        try:
            relative = gcs.inside(relative, f"{where}: field 'files'")
        except ValueError as error:
            raise CheckpointMarkerError(f"{error}: refused, a marker may list only files of its own checkpoint") from None
        if relative == MARKER or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise CheckpointMarkerError(f"{where}: field 'files' lists {relative!r} with size {size!r}, expected a "
                                        "file of the checkpoint and its byte count")
        files[relative] = size
    return files
