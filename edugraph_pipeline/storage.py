"""Where artifacts live: ``<EDUGRAPH_DATA_DIR>/<asset>/<partition or latest>/``, each with a ``lineage.json``.

``<asset>/<key>`` is a symbolic link to a complete version folder ``<asset>/.versions/<key>/<id>/``. A new
artifact is written into a fresh version folder and becomes visible in ONE atomic step: ``os.replace`` of a
temporary link onto ``<asset>/<key>``. A run killed at any moment therefore leaves readers the previous artifact
or the new complete one, never a missing or half-written one. Version folders left by killed runs (and retired
ones) are removed by the next publication of the same key; a version whose builder is still alive (it holds an
advisory lock on ``<id>.lock``) and the current one are never removed.

What is current is decided in one place, `_current_version`, and changed in one place, `_commit`.

`open_store` picks the store of a location: a local folder (this module) or ``gs://<bucket>/<prefix>``
(`edugraph_pipeline.store_gcs`: the same API over object storage, with a local mirror in this layout).
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
from datetime import datetime, timezone
from pathlib import Path

LINEAGE_FILE = "lineage.json"
UNPARTITIONED = "latest"  # the folder of an unpartitioned asset (models: the newest one)
VERSIONS = ".versions"
LEGACY_VERSION = "legacy"  # a plain artifact folder of the layout before versions, moved aside once
COMMIT_LOCK = ".commit.lock"
# The points of `publish` at which `on_step` is called (and a kill test stops the process).
PUBLISH_STEPS = ("staged", "content-written", "lineage-written", "link-created", "committed", "cleaned")


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


@contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
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


OBJECT_STORE_SCHEMES = ("gs",)
WORK = ".work"  # scratch and resumable training work dirs, always on a local disk


def url_scheme(location: str | os.PathLike) -> str | None:
    """`gs` for ``gs://...``; None for a local path. Also catches ``gs:/x`` (a URL a Path has collapsed)."""
    text = os.fspath(location)
    scheme, sep, _ = text.partition(":")
    if sep and len(scheme) > 1 and scheme.isalnum() and text[len(scheme) + 1 :].startswith("/"):
        return scheme.lower()
    return None


def open_store(location: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
               on_step: Callable[[str], None] | None = None) -> ArtifactStore:
    """The artifact store at `location` (`EDUGRAPH_DATA_DIR`): a local folder, or ``gs://<bucket>/<prefix>``
    mirrored under `cache_dir` (default: `default_cache_dir`). Any other URL is an error, never a local folder."""
    scheme = url_scheme(location)
    if scheme is None:
        return ArtifactStore(Path(location).expanduser().resolve(), on_step=on_step)
    if scheme != "gs" or not os.fspath(location).startswith("gs://"):
        raise ValueError(
            f"EDUGRAPH_DATA_DIR={os.fspath(location)!r}: not a local folder and not a supported object store URL "
            f"(expected gs://<bucket>/<prefix>)"
        )
    from edugraph_pipeline.store_gcs import GcsArtifactStore

    return GcsArtifactStore(os.fspath(location), cache_dir=cache_dir, on_step=on_step)


def default_cache_dir(location: str) -> Path:
    """The local cache of an object store when `EDUGRAPH_CACHE_DIR` is unset: per user, per bucket and prefix."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edugraph" / "stores"
    return base / location.split("://", 1)[1].strip("/")


def write_lineage(folder: Path, asset: str, partition: str | None, lineage: dict) -> dict:
    """Write `lineage.json` of an artifact being published (in its staging folder); returns the record."""
    record = lineage_record(asset, partition, lineage)
    (folder / LINEAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return record


def lineage_record(asset: str, partition: str | None, lineage: dict) -> dict:
    """What `lineage.json` holds: the caller's lineage under the store's own fields."""
    return {"asset": asset, "partition": partition, "created_at": datetime.now(timezone.utc).isoformat(), **lineage}


def new_version_id() -> str:
    """Sortable by creation time (the object store's cleaner reads the age from it), unique by its random tail."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class ArtifactStore:
    def __init__(self, root: Path, *, on_step: Callable[[str], None] | None = None):
        self.root = Path(root)
        self._on_step = on_step or (lambda step: None)  # test hook: see PUBLISH_STEPS

    @property
    def location(self) -> str:
        """The store's own name (`EDUGRAPH_DATA_DIR` resolved): a folder here, a gs:// URL for object storage."""
        return str(self.root)

    @property
    def work_root(self) -> Path:
        """A local folder for scratch space and training work dirs (never published, never uploaded)."""
        return self.root / WORK

    def portable(self, value):
        """`value` (a job description, a lineage field) with every path inside this store's `root` named as the
        store names it (under `location`): the same on every machine, whatever its cache dir. For a local store
        `location` is `root`, so nothing changes."""
        return renamed(value, str(self.root), self.location)

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        """The stable path of an artifact (a link to its current version); what readers open and lineage names."""
        key = partition or UNPARTITIONED
        if not key or key.startswith(".") or "/" in key or "\\" in key:
            raise ValueError(f"partition key {key!r} cannot name a folder")
        return self.root / asset / key

    def current(self, asset: str, partition: str | None = None) -> Path:
        """The version folder `asset_dir` points at now: read several files from it to see one version."""
        final = self.asset_dir(asset, partition)
        version = _current_version(final)
        if version is None:
            raise FileNotFoundError(f"{final} does not exist: materialize {asset}" + _for(partition) + " first")
        return version

    def lineage(self, asset: str, partition: str | None = None) -> dict:
        path = self.asset_dir(asset, partition) / LINEAGE_FILE
        try:
            return json.loads((self.current(asset, partition) / LINEAGE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist: materialize {asset}{_for(partition)} first") from None

    @contextmanager
    def publish(self, asset: str, partition: str | None, lineage: dict) -> Iterator[Path]:
        """Yield an empty version folder; when the block succeeds it becomes the artifact in one atomic step."""
        final = self.asset_dir(asset, partition)
        versions = final.parent / VERSIONS / final.name
        versions.mkdir(parents=True, exist_ok=True)
        version_id = new_version_id()
        staging = versions / version_id
        lock = versions / f"{version_id}.lock"
        committed = False
        try:
            with _locked(lock):  # held while building: tells cleaners this one is alive
                staging.mkdir()
                self._on_step("staged")
                yield staging
                self._on_step("content-written")
                write_lineage(staging, asset, partition, lineage)
                self._on_step("lineage-written")
                with _locked(versions / COMMIT_LOCK):
                    self._commit(final, staging)
                    committed = True
                    self._on_step("committed")
                    _remove_stale(final, versions, keep=staging)
                self._on_step("cleaned")
        finally:
            lock.unlink(missing_ok=True)
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)
                _remove_empty(versions, versions.parent, final.parent)

    def _commit(self, final: Path, version: Path) -> None:
        """Point `final` at `version`: the single atomic step that makes an artifact visible (commit lock held)."""
        if final.exists() and not final.is_symlink():  # the layout before versions: move the plain folder aside
            os.replace(final, version.parent / LEGACY_VERSION)  # readers find it there until the link exists
        link = final.parent / f".link-{final.name}-{uuid.uuid4().hex[:8]}"
        link.symlink_to(version.relative_to(final.parent))
        self._on_step("link-created")
        os.replace(link, final)


def renamed(value, old: str, new: str):
    """`value` with every string equal to `old` or below it (``old/...``) starting with `new` instead."""
    if isinstance(value, dict):
        return {key: renamed(item, old, new) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(renamed(item, old, new) for item in value)
    if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
        return new + value[len(old):]
    return value


def _current_version(final: Path) -> Path | None:
    """The version folder an artifact path stands for, or None (also for a plain folder of the old layout)."""
    if final.is_symlink():
        # the link's own (relative) target, not resolve(): a root reached through a symbolic link must still name
        # the version folders as `_remove_stale` lists them
        target = Path(os.path.normpath(final.parent / os.readlink(final)))
        return target if target.is_dir() else None
    if final.is_dir():
        return final
    legacy = final.parent / VERSIONS / final.name / LEGACY_VERSION  # a migration killed before its link existed
    return legacy if legacy.is_dir() else None


def _remove_stale(final: Path, versions: Path, keep: Path) -> None:
    """Remove version folders of killed or superseded runs of this key (commit lock held); never a live one."""
    current = _current_version(final)
    live = {keep.name, current.name if current is not None else keep.name}
    for entry in versions.iterdir():
        if entry.name.startswith(".") or entry.name in live:
            continue
        if entry.suffix == ".lock":
            continue  # removed with its folder (a builder takes its lock before it makes its folder)
        lock = versions / f"{entry.name}.lock"
        if lock.exists():
            with _locked(lock, blocking=False) as free:
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


def _remove_empty(*folders: Path) -> None:
    """A failed first publication leaves no trace (the folders are removed only if nothing else is in them)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _for(partition: str | None) -> str:
    return f" for partition {partition}" if partition else ""
