"""Versions of an artifact on a local disk: content hashes, version ids, advisory locks, and which version is
current (both stores keep their local folders this way; the GCS store's mirror is such a folder too).

``<asset>/<key>`` is a symbolic link to a complete version folder ``<asset>/.versions/<key>/<id>/``. What is
current is decided in one place, `current_version`, and changed in one place, `point` (one `os.replace` of a
temporary link). Version folders of killed or superseded runs are removed by `remove_stale`, never the current one
nor one whose builder still holds its ``<id>.lock``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

LINEAGE_FILE = "lineage.json"
UNPARTITIONED = "latest"  # the folder of an unpartitioned asset (models: the newest one)
VERSIONS = ".versions"
LEGACY_VERSION = "legacy"  # a plain artifact folder of the layout before versions, moved aside once
COMMIT_LOCK = ".commit.lock"
WORK = ".work"  # scratch and resumable training work dirs, always on a local disk
_VERSION_TIME = "%Y%m%dT%H%M%S"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def folder_sha256(folder: Path) -> str:
    """A content hash of every file under `folder` (relative paths and bytes; independent of timestamps)."""
    digest = hashlib.sha256()
    files = sorted(path for path in Path(folder).rglob("*") if path.is_file())
    if not files:
        raise FileNotFoundError(f"{folder} holds no files to hash")
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def new_version_id() -> str:
    """Sortable by creation time (the object store's cleaner reads the age from it), unique by its random tail."""
    return f"{datetime.now(timezone.utc):{_VERSION_TIME}}-{uuid.uuid4().hex[:8]}"


def version_age(version_id: str) -> timedelta:
    """How long ago `version_id` was taken; zero for an id not made by `new_version_id` (never old)."""
    try:
        created = datetime.strptime(version_id.split("-", 1)[0], _VERSION_TIME).replace(tzinfo=timezone.utc)
    except ValueError:
        return timedelta(0)
    return datetime.now(timezone.utc) - created


def partition_folder(partition: str | None) -> str:
    """The folder name of a partition key (`UNPARTITIONED` for none); a key that cannot name a folder is an error."""
    key = partition or UNPARTITIONED
    if not key or key.startswith(".") or "/" in key or "\\" in key:
        raise ValueError(f"partition key {key!r} cannot name a folder")
    return key


def missing(where: str | Path, asset: str, partition: str | None) -> FileNotFoundError:
    """The error of an artifact that is not there, saying what to materialize."""
    suffix = f" for partition {partition}" if partition else ""
    return FileNotFoundError(f"{where} does not exist: materialize {asset}{suffix} first")


@contextmanager
def locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive advisory lock on `path` (released by the kernel when the holder dies, even by SIGKILL)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def commit_lock(versions: Path) -> Path:
    """The lock held while the link of `versions`' key changes (and while its stale versions are removed)."""
    versions.mkdir(parents=True, exist_ok=True)
    return versions / COMMIT_LOCK


def write_lineage(folder: Path, asset: str, partition: str | None, lineage: dict) -> dict:
    """Write `lineage.json` of an artifact being published (in its staging folder); returns the record."""
    record = lineage_record(asset, partition, lineage)
    (folder / LINEAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return record


def lineage_record(asset: str, partition: str | None, lineage: dict) -> dict:
    """What `lineage.json` holds: the caller's lineage under the store's own fields."""
    return {"asset": asset, "partition": partition, "created_at": datetime.now(timezone.utc).isoformat(), **lineage}


def renamed(value, old: str, new: str):
    """`value` with every string equal to `old` or below it (``old/...``) starting with `new` instead."""
    if isinstance(value, dict):
        return {key: renamed(item, old, new) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(renamed(item, old, new) for item in value)
    if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
        return new + value[len(old):]
    return value


def current_version(final: Path) -> Path | None:
    """The version folder an artifact path stands for, or None (also for a plain folder of the old layout)."""
    if final.is_symlink():
        # the link's own (relative) target, not resolve(): a root reached through a symbolic link must still name
        # the version folders as `remove_stale` lists them
        target = Path(os.path.normpath(final.parent / os.readlink(final)))
        return target if target.is_dir() else None
    if final.is_dir():
        return final
    legacy = final.parent / VERSIONS / final.name / LEGACY_VERSION  # a migration killed before its link existed
    return legacy if legacy.is_dir() else None


def point(final: Path, version: Path, *, on_linked: Callable[[], None] | None = None) -> None:
    """Point `final` at `version` in one atomic step (`os.replace` of a fresh link); commit lock held.
    `on_linked` runs between the link's creation and the replace (the kill tests stop there)."""
    link = final.parent / f".link-{final.name}-{uuid.uuid4().hex[:8]}"
    link.symlink_to(version.relative_to(final.parent))
    if on_linked is not None:
        on_linked()
    os.replace(link, final)


def remove_stale(final: Path, versions: Path, keep: Path) -> None:
    """Remove version folders of killed or superseded runs of this key (commit lock held); never a live one."""
    current = current_version(final)
    live = {keep.name, current.name if current is not None else keep.name}
    for entry in versions.iterdir():
        if entry.name.startswith(".") or entry.name in live:
            continue
        if entry.suffix == ".lock":
            continue  # removed with its folder (a builder takes its lock before it makes its folder)
        lock = versions / f"{entry.name}.lock"
        if lock.exists():
            with locked(lock, blocking=False) as free:
                if not free:
                    continue  # its builder is still running
                shutil.rmtree(entry, ignore_errors=True)
                lock.unlink(missing_ok=True)
        else:
            shutil.rmtree(entry, ignore_errors=True)
    for leftover in final.parent.glob(f".link-{final.name}-*"):
        leftover.unlink(missing_ok=True)
    for leftover in [*final.parent.glob(f".staging-{final.name}-*"), *final.parent.glob(f".retired-{final.name}-*")]:
        shutil.rmtree(leftover, ignore_errors=True)  # from the layout before versions


def remove_empty(*folders: Path) -> None:
    """A failed first publication leaves no trace (the folders are removed only if nothing else is in them)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
