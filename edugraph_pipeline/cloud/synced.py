"""Folders kept in a bucket for the machine after this one: the files first, then a marker that lists them with
their sizes and says what the folder holds. The Trainer's checkpoints (`training/checkpoint_sync.py`) and a job's
base model - its Hub snapshot, the stage-1-merged base - are kept this way, so a spot machine that replaces a
preempted one downloads them instead of rebuilding them.

A folder without its marker, or with a listed file missing or of another size (an upload cut short by a
preemption), is never restored; a restore downloads beside the destination and moves the folder in whole. A marker
is read from a bucket, so it is outside input: one that is not JSON, has fields of the wrong type or value, or
lists a file outside its folder (``../x``, an absolute path) is refused with a `MarkerError` naming the marker and
the field, and nothing of it is downloaded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edugraph_pipeline.cloud.gcs import inside

MARKER = "_EDUGRAPH_COMPLETE.json"


class MarkerError(ValueError):
    """A marker in a bucket is not one this module wrote (the message names the marker and the field)."""


def marker_files(data: bytes, where: str, *, kind: str, expected: Mapping[str, Any]) -> dict[str, int]:
    """The files a marker lists (relative path -> size), each inside its folder, its other fields equal to
    `expected`; else a `MarkerError` naming `where` and the field. `kind` names what the folder holds."""
    try:
        marker = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MarkerError(f"{where}: not a {kind} marker: not JSON ({error})") from None
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), dict):
        raise MarkerError(f"{where}: not a {kind} marker: field 'files' must be an object of sizes")
    for name, value in expected.items():
        if marker.get(name) != value or type(marker.get(name)) is not type(value):
            raise MarkerError(f"{where}: field '{name}' is {marker.get(name)!r}, expected {value!r}")
    files = {}
    for relative, size in marker["files"].items():
        try:
            relative = inside(relative, f"{where}: field 'files'")
        except ValueError as error:
            raise MarkerError(f"{error}: refused, a marker may list only files of its own folder") from None
        if relative == MARKER or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MarkerError(f"{where}: field 'files' lists {relative!r} with size {size!r}, expected a file of "
                              f"the {kind} and its byte count")
        files[relative] = size
    return files


def local_files(folder: Path) -> dict[str, int]:
    """Every file below `folder` (symbolic links followed, as the Hub cache's snapshots are) and its size."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def upload_with_marker(bucket, root: str, folder: Path, fields: Mapping[str, Any]) -> dict[str, int]:
    """Upload every file of `folder` to ``<root>/``, then the marker (`fields` and the files); returns the files."""
    files = local_files(folder)
    for relative in files:
        bucket.blob(f"{root}/{relative}").upload_from_filename(str(folder / relative))
    marker = {**fields, "files": files}
    bucket.blob(f"{root}/{MARKER}").upload_from_string(json.dumps(marker), content_type="application/json")
    return files


def download_whole(bucket, root: str, files: Mapping[str, int], target: Path) -> None:
    """Download `files` (checked by `marker_files` to lie inside their folder) from ``<root>/`` into `target`:
    written beside it first and moved in whole, so a reader never sees half a folder."""
    partial = target.parent / f".{target.name}.restoring"
    shutil.rmtree(partial, ignore_errors=True)
    for relative in files:
        destination = partial / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        bucket.blob(f"{root}/{relative}").download_to_filename(str(destination))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def has_files(target: Path, files: Mapping[str, int]) -> bool:
    """Whether `target` already holds every one of `files` with its size."""
    return target.is_dir() and all((target / r).is_file() and (target / r).stat().st_size == s for r, s in files.items())


class SyncedFolder:
    """One folder at ``gs://<bucket>/<root>/`` with its marker; `identity` (the marker's other fields) says what
    it holds, and a marker with other values is refused: it is not this folder's."""

    def __init__(self, client, bucket: str, root: str, *, kind: str, identity: Mapping[str, Any]) -> None:
        self.client, self.bucket_name, self.root = client, bucket, root.strip("/")
        self.kind, self.identity = kind, dict(identity)
        self.bucket = client.bucket(bucket)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket_name}/{self.root}"

    def files(self) -> dict[str, int] | None:
        """The files of the complete folder; None while it has no marker or a listed file is missing or of
        another size."""
        prefix = self.root + "/"
        sizes = {b.name[len(prefix):]: int(b.size or 0) for b in self.client.list_blobs(self.bucket_name, prefix=prefix)}
        if MARKER not in sizes:
            return None
        data = self.bucket.blob(f"{self.root}/{MARKER}").download_as_bytes()
        files = marker_files(data, f"{self.uri}/{MARKER}", kind=self.kind, expected=self.identity)
        return files if files and all(sizes.get(r) == s for r, s in files.items()) else None

    def upload(self, folder: Path) -> dict[str, int]:
        """Upload every file of `folder`, then the marker; returns the files."""
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder to sync to {self.uri}")
        return upload_with_marker(self.bucket, self.root, folder, self.identity)

    def restore(self, target: Path) -> dict[str, int] | None:
        """Make `target` the complete remote folder (nothing to do when it already is); None when there is none."""
        files = self.files()
        if files is None:
            return None
        if not has_files(target, files):
            target.parent.mkdir(parents=True, exist_ok=True)
            download_whole(self.bucket, self.root, files, target)
        return files
