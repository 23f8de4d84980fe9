"""What a training machine leaves in GCS for the one after it, so a spot preemption costs minutes, not the job:
every Trainer checkpoint, the base model's Hub snapshot and the stage-1-merged base.

Checkpoints, under ``gs://<bucket>/<root>/`` (the launcher's ``<prefix>/work/<job identity>/checkpoints``: stable per
job, never per attempt, so any VM or Vertex worker that runs the same job finds them)::

    checkpoint-200/<the Trainer's files>
    checkpoint-200/_EDUGRAPH_COMPLETE.json   {"step": 200, "files": {"<relative path>": <size>, ...}}

Each is synced like every folder of `cloud/synced.py` (files first, then the marker; one cut short is never
restored; a marker is outside input); once a new checkpoint is complete, older ones beyond `keep` are deleted.
The step turns it on when the launcher's wrapper (`training/remote.py`) sets ``EDUGRAPH_CHECKPOINT_SYNC``:
`synced_checkpoints` restores the newest into the Trainer's checkpoint folder, then returns the `TrainerCallback`
that uploads each save.

The bases, under ``EDUGRAPH_BASE_SYNC`` (``<prefix>/work/<job identity>/bases``), with `synced_bases`:

    base-snapshot/   the Hub snapshot of the base at its pinned commit (not for a local base folder)
    merged-base/     stage 2's base with the knowledge adapter merged in (the folder `sft.merged_base` saves)

A machine restores both before the stage starts - the snapshot into the Hugging Face cache, where the stage's own
``snapshot_download`` of that commit finds every file, the merged base into the job's work dir, where
`sft.merged_base` finds it - so it neither downloads the base from the Hub nor merges stage 1 again. What is not
there yet is synced by the machine that made it: the snapshot right after its download, the merged base when
training begins (the merge happens inside the stage, before the Trainer starts).

Only google-cloud-storage and the standard library (transformers and huggingface_hub are imported lazily, inside
the step): no dagster.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edugraph_pipeline import settings
from edugraph_pipeline.cloud import gcs
from edugraph_pipeline.cloud.synced import (
    MARKER,
    MarkerError,
    SyncedFolder,
    download_whole,
    has_files,
    marker_files,
    upload_with_marker,
)

SYNC_ENV = "EDUGRAPH_CHECKPOINT_SYNC"
BASE_SYNC_ENV = "EDUGRAPH_BASE_SYNC"
BASE_SNAPSHOT_FOLDER = "base-snapshot"
MERGED_BASE_FOLDER = "merged-base"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
_HUB_COMMIT = re.compile(r"[0-9a-f]{40}")
CheckpointMarkerError = MarkerError  # a checkpoint's marker that is not one `cloud.synced` wrote


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
            step = int(match.group(1))
            data = self.bucket.blob(f"{self.root}/{name}").download_as_bytes()
            files = marker_files(data, f"{self.uri}/{name}", kind="checkpoint", expected={"step": step})
            if files and all(blobs.get(f"{folder}/{rel}") == size for rel, size in files.items()):
                found.append(RemoteCheckpoint(step=step, name=folder, files=files))
        return sorted(found, key=lambda c: c.step)

    def newest(self) -> RemoteCheckpoint | None:
        complete = self.complete()
        return complete[-1] if complete else None

    def upload(self, folder: Path) -> RemoteCheckpoint:
        """Upload the checkpoint folder `folder` (``checkpoint-N``): its files, then the marker; then prune."""
        match = _CHECKPOINT.fullmatch(folder.name)
        if not match or not folder.is_dir():
            raise ValueError(f"{folder}: not a Trainer checkpoint folder (checkpoint-<step>)")
        files = upload_with_marker(self.bucket, f"{self.root}/{folder.name}", folder, {"step": int(match.group(1))})
        self.prune()
        return RemoteCheckpoint(step=int(match.group(1)), name=folder.name, files=files)

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
        if not has_files(target, newest.files):  # else this machine has it already
            download_whole(self.bucket, f"{self.root}/{newest.name}", newest.files, target)
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


# ---- the bases: the Hub snapshot and the stage-1-merged base


def synced_bases(base_model: str, base_revision: str | None, merged_base_dir: Path | None,
                 log_fn: Callable[[str], None], *, sync_to: str | None = None) -> list:
    """With a sync folder (`sync_to`, default ``EDUGRAPH_BASE_SYNC``): make the base's Hub snapshot (`base_model`
    at `base_revision`) local, from the folder or else from the Hub (then synced), and restore the merged base into
    `merged_base_dir` (None: the stage merges nothing); returns ``[callback]`` that syncs the merged base once the
    stage has built it, or ``[]``. Without a sync folder: ``[]``, nothing done (local runs keep both on disk)."""
    uri = (settings.setting(BASE_SYNC_ENV) if sync_to is None else sync_to).strip()
    if not uri:
        return []
    bucket, root = gcs.parse_gs_url(uri, named=BASE_SYNC_ENV, folder_required=True)
    client = gcs.client()
    _base_snapshot(client, bucket, root, base_model, base_revision, log_fn)
    if merged_base_dir is None:
        return []
    folder = SyncedFolder(client, bucket, f"{root}/{MERGED_BASE_FOLDER}", kind="merged base",
                          identity={"base_model": base_model, "base_revision": base_revision})
    files = folder.restore(merged_base_dir)
    if files is not None:
        log_fn(f"merged base restored from {folder.uri} ({_count(files)}): stage 1 is not merged again")
        return []
    log_fn(f"no merged base in {folder.uri} yet: this machine merges stage 1 and syncs the result")
    return [_merged_base_callback(folder, merged_base_dir, log_fn)]


def hub_snapshot_folder(model_id: str, commit: str) -> Path:
    """Where huggingface_hub keeps `model_id` at `commit` (its cache: ``HF_HUB_CACHE``, below ``HF_HOME``)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=model_id, repo_type="model") / "snapshots" / commit


def _base_snapshot(client, bucket: str, root: str, model_id: str, revision: str | None, log_fn) -> None:
    """Restore the Hub snapshot of `model_id`@`revision` into the HF cache, or download it from the Hub (what the
    stage would do a moment later) and sync it. A local base folder, or none pinned, is nothing from the Hub."""
    from edugraph_pipeline.training.revision import is_local, pinned_folder

    if revision is None or is_local(model_id) or not _HUB_COMMIT.fullmatch(revision):
        return
    folder = SyncedFolder(client, bucket, f"{root}/{BASE_SNAPSHOT_FOLDER}", kind="base snapshot",
                          identity={"model": model_id, "revision": revision})
    files = folder.restore(hub_snapshot_folder(model_id, revision))
    if files is not None:
        log_fn(f"base {model_id}@{revision[:12]} restored from {folder.uri} ({_count(files)}): not downloaded "
               "from the Hub")
        return
    snapshot = Path(pinned_folder(model_id, revision))
    files = folder.upload(snapshot)
    log_fn(f"base {model_id}@{revision[:12]} downloaded from the Hub and synced to {folder.uri} ({_count(files)})")


def _merged_base_callback(folder: SyncedFolder, merged_base_dir: Path, log_fn: Callable[[str], None]):
    from transformers import TrainerCallback

    class MergedBaseSync(TrainerCallback):
        """Uploads the merged base when training begins: the stage merged it just before creating the Trainer."""

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero or not merged_base_dir.is_dir() or folder.files() is not None:
                return
            files = folder.upload(merged_base_dir)
            log_fn(f"merged base synced to {folder.uri} ({_count(files)}): the next machine of this job restores it")

    return MergedBaseSync()


def _count(files: dict[str, int]) -> str:
    return f"{len(files)} files, {sum(files.values())} bytes"
