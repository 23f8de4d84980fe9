"""The artifact store in Google Cloud Storage (``EDUGRAPH_DATA_DIR=gs://<bucket>/<prefix>``), with the local API.

Objects, under ``<prefix>/``:

- ``<asset>/.versions/<key>/<id>/<file>``: every file of one version, uploaded before anything points at it;
- ``<asset>/<key>.manifest.json``: the commit object. ONE small write makes a version current; it lists every
  file with its size and sha256, and carries the lineage record. Readers trust only the manifest, so a
  publication killed at any moment (half its files uploaded, or all of them) leaves the previous artifact current.

Code that needs local paths keeps them: the store's `root` is a local mirror laid out exactly like a local store
(`<asset>/<key>` a link to `.versions/<key>/<id>/`), so `asset_dir`/`current` return local folders. Reading an
artifact materialises its current version into the mirror once per version id (streamed file by file, each
checked against the manifest's size and sha256); `publish` stages into the mirror, so the publishing machine
never downloads what it wrote. `lineage` reads the manifest only. `work_root` is local (under the mirror).

Cleaning: the version a commit replaces is deleted right after the commit; an upload that never committed (its
run was killed) is deleted by a later publication of the same key once its id is `STALE_UPLOAD` old (its id is
taken when its upload starts, so a live upload is never that old).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

from edugraph_pipeline.storage import (
    COMMIT_LOCK,
    LINEAGE_FILE,
    VERSIONS,
    ArtifactStore,
    _current_version,
    _for,
    _locked,
    _remove_stale,
    default_cache_dir,
    file_sha256,
    lineage_record,
    new_version_id,
)

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
STALE_UPLOAD = timedelta(hours=24)
MIRROR_FOLDER = "artifacts"  # the mirror's folder inside EDUGRAPH_CACHE_DIR
# The points of `publish` at which `on_step` is called (and a kill test stops the process). "uploading" comes
# after the first file is uploaded: a kill there leaves a partial version in the bucket.
PUBLISH_STEPS = ("staged", "content-written", "lineage-written", "uploading", "uploaded", "committed", "cleaned")
# Bytes this process moved to and from buckets through any store (bench/store_transfer.py reads them: asset code
# opens a store per call, so per-store counts alone would not add up to a stage).
PROCESS_TRANSFERRED = {"uploaded": 0, "downloaded": 0}


class GcsStoreError(RuntimeError):
    """The object store cannot be reached or holds something inconsistent (the message names the URL)."""


def parse_gcs_url(location: str) -> tuple[str, str]:
    """(bucket, prefix) of ``gs://<bucket>[/<prefix>]``; the prefix has no leading or trailing slash."""
    if not location.startswith("gs://"):
        raise ValueError(f"{location!r} is not a gs://<bucket>/<prefix> URL")
    bucket, _, prefix = location[len("gs://") :].partition("/")
    if not bucket:
        raise ValueError(f"EDUGRAPH_DATA_DIR={location!r}: no bucket name (expected gs://<bucket>/<prefix>)")
    return bucket, prefix.strip("/")


def open_bucket(location: str):
    """The bucket of `location`, checked by listing one object (the permission the store needs anyway): missing
    credentials, a missing bucket or an unreachable endpoint fail here, naming the URL."""
    from google.api_core import exceptions as api_errors
    from google.api_core.retry import Retry
    from google.auth import exceptions as auth_errors

    from edugraph_pipeline.training.remote import gcs_client  # owns the emulator/credentials rule

    bucket_name, prefix = parse_gcs_url(location)
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"
    try:
        client = gcs_client()
    except (auth_errors.DefaultCredentialsError, OSError) as error:
        raise GcsStoreError(
            f"EDUGRAPH_DATA_DIR={location}: no Google Cloud credentials ({type(error).__name__}: {error}); run "
            "`gcloud auth application-default login` (or use a service account), or set STORAGE_EMULATOR_HOST "
            "to a GCS emulator"
        ) from None
    try:
        next(iter(client.list_blobs(bucket_name, prefix=prefix, max_results=1, timeout=20,
                                    retry=Retry(timeout=30))), None)
    except api_errors.NotFound:
        raise GcsStoreError(f"EDUGRAPH_DATA_DIR={location}: bucket {bucket_name} does not exist ({endpoint})") from None
    except api_errors.Forbidden as error:
        raise GcsStoreError(f"EDUGRAPH_DATA_DIR={location}: no permission to list objects ({error.message})") from None
    except Exception as error:  # connection refused, timeouts: the transport's own types vary
        raise GcsStoreError(
            f"EDUGRAPH_DATA_DIR={location}: {endpoint} does not answer ({type(error).__name__}: {error})"
        ) from None
    return client.bucket(bucket_name)


class GcsArtifactStore(ArtifactStore):
    def __init__(self, location: str, *, cache_dir: str | os.PathLike | None = None,
                 on_step: Callable[[str], None] | None = None):
        self.url = location.rstrip("/")
        _, self.prefix = parse_gcs_url(self.url)
        mirror = Path(cache_dir or default_cache_dir(self.url)) / MIRROR_FOLDER
        super().__init__(mirror.expanduser().resolve(), on_step=on_step)
        self.bucket = open_bucket(self.url)
        self.transferred = {"uploaded": 0, "downloaded": 0}  # by this store object (see PROCESS_TRANSFERRED)

    @property
    def location(self) -> str:
        return self.url

    def uri(self, asset: str, partition: str | None = None) -> str:
        """The artifact's name in the bucket (what lineage should record: the mirror path is per machine)."""
        return f"{self.url}/{asset}/{ArtifactStore.asset_dir(self, asset, partition).name}"

    # ---- reading

    def manifest(self, asset: str, partition: str | None = None) -> dict | None:
        """The commit object of the current version, or None when nothing was published."""
        from google.api_core import exceptions as api_errors

        key = ArtifactStore.asset_dir(self, asset, partition).name
        blob = self.bucket.blob(self._name(asset, key + MANIFEST_SUFFIX))
        try:
            data = blob.download_as_bytes()
        except api_errors.NotFound:
            return None
        self._count("downloaded", len(data))
        try:
            manifest = json.loads(data)
            if manifest["format"] != MANIFEST_FORMAT:
                raise ValueError(f"format {manifest['format']}, expected {MANIFEST_FORMAT}")
            for field in ("version", "files", "lineage"):
                manifest[field]  # noqa: B018 - present, or the KeyError below names it
        except (ValueError, KeyError) as error:
            raise GcsStoreError(f"{self._url_of(blob.name)} is not a valid manifest: {error}") from None
        return manifest

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        """The local link to the current version, materialised from the bucket (absent when nothing is published)."""
        final = super().asset_dir(asset, partition)
        self._sync(asset, partition, final)
        return final

    def current(self, asset: str, partition: str | None = None) -> Path:
        final = super().asset_dir(asset, partition)
        version = self._sync(asset, partition, final)
        if version is None:
            raise FileNotFoundError(
                f"{self.uri(asset, partition)} does not exist: materialize {asset}{_for(partition)} first"
            )
        return version

    def lineage(self, asset: str, partition: str | None = None) -> dict:
        """From the manifest alone: reading lineage downloads no artifact."""
        manifest = self.manifest(asset, partition)
        if manifest is None:
            raise FileNotFoundError(
                f"{self.uri(asset, partition)} does not exist: materialize {asset}{_for(partition)} first"
            )
        return manifest["lineage"]

    def _sync(self, asset: str, partition: str | None, final: Path) -> Path | None:
        """Make the mirror's link show the bucket's current version; return that version's local folder."""
        versions = final.parent / VERSIONS / final.name
        manifest = self.manifest(asset, partition)
        if manifest is None:
            if os.path.lexists(final):  # unpublished since this mirror saw it: it must not look current
                with _locked(_commit_lock(versions)):
                    final.unlink(missing_ok=True)
            return None
        version = versions / _checked_id(manifest["version"], self._url_of(f"{asset}/{final.name}{MANIFEST_SUFFIX}"))
        if not version.is_dir():
            self._materialise(asset, final.name, manifest, version)
        if _current_version(final) != version:
            with _locked(_commit_lock(versions)):
                _point(final, version)
                _remove_stale(final, versions, keep=version)
        return version

    def _materialise(self, asset: str, key: str, manifest: dict, version: Path) -> None:
        """Download every file the manifest lists into a private folder, verify it, then rename it into place."""
        from google.api_core import exceptions as api_errors

        version.parent.mkdir(parents=True, exist_ok=True)
        partial = version.parent / f"{version.name}.download-{uuid.uuid4().hex[:8]}"
        lock = partial.parent / f"{partial.name}.lock"  # held while downloading: the mirror's cleaner skips it
        try:
            with _locked(lock):
                partial.mkdir()
                for entry in manifest["files"]:
                    relative = _checked_path(entry["path"], self._url_of(f"{asset}/{key}{MANIFEST_SUFFIX}"))
                    name = self._name(asset, VERSIONS, key, version.name, relative)
                    target = partial / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        self.bucket.blob(name).download_to_filename(str(target))  # streamed to disk
                    except api_errors.NotFound:
                        raise GcsStoreError(f"{self._url_of(name)} is listed in its manifest but missing") from None
                    size = target.stat().st_size
                    self._count("downloaded", size)
                    if size != entry["size"] or file_sha256(target) != entry["sha256"]:
                        raise GcsStoreError(
                            f"{self._url_of(name)} does not match its manifest (size {size}, expected {entry['size']}"
                            ", or a different sha256)"
                        )
                try:
                    os.rename(partial, version)
                except OSError:
                    if not version.is_dir():  # else another reader on this machine finished first: same content
                        raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
            lock.unlink(missing_ok=True)

    # ---- publishing

    @contextmanager
    def publish(self, asset: str, partition: str | None, lineage: dict) -> Iterator[Path]:
        """Yield an empty local folder; when the block succeeds its files are uploaded, then ONE manifest write
        makes them the artifact."""
        final = ArtifactStore.asset_dir(self, asset, partition)
        versions = final.parent / VERSIONS / final.name
        versions.mkdir(parents=True, exist_ok=True)
        staging = versions / new_version_id()
        lock = versions / f"{staging.name}.lock"
        version_id = None
        committed = False
        try:
            with _locked(lock):
                staging.mkdir()
                self._on_step("staged")
                yield staging
                self._on_step("content-written")
                record = lineage_record(asset, partition, lineage)
                (staging / LINEAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
                self._on_step("lineage-written")
                version_id = new_version_id()  # taken now: the id's age is the upload's age (see STALE_UPLOAD)
                files = self._upload(asset, final.name, version_id, staging)
                self._on_step("uploaded")
                replaced = self.manifest(asset, partition)
                manifest = {
                    "format": MANIFEST_FORMAT,
                    "asset": asset,
                    "partition": partition,
                    "version": version_id,
                    # a publisher killed after its commit leaves this one behind: the next one deletes it
                    "replaces": replaced["version"] if replaced else None,
                    "created_at": record["created_at"],
                    "files": files,
                    "lineage": record,
                }
                data = json.dumps(manifest, indent=1, sort_keys=True).encode()
                self.bucket.blob(self._name(asset, final.name + MANIFEST_SUFFIX)).upload_from_string(
                    data, content_type="application/json"
                )
                self._count("uploaded", len(data))
                committed = True
                self._on_step("committed")
                version = versions / version_id
                os.rename(staging, version)  # the mirror holds what was uploaded: nothing to download
                with _locked(_commit_lock(versions)):
                    _point(final, version)
                    _remove_stale(final, versions, keep=version)
                self._remove_superseded(asset, partition, final.name, keep=version_id, replaced=replaced)
                self._on_step("cleaned")
        finally:
            lock.unlink(missing_ok=True)
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)
                if version_id is not None:
                    # a failed (not killed) upload removes its partial version now rather than after STALE_UPLOAD
                    self._delete_version(asset, final.name, version_id)

    def _upload(self, asset: str, key: str, version_id: str, staging: Path) -> list[dict]:
        files = []
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            relative = path.relative_to(staging).as_posix()
            size = path.stat().st_size
            # resumable, chunked upload above the client's threshold: large files are never read into memory
            self.bucket.blob(self._name(asset, VERSIONS, key, version_id, relative)).upload_from_filename(str(path))
            self._count("uploaded", size)
            files.append({"path": relative, "size": size, "sha256": file_sha256(path)})
            if len(files) == 1:
                self._on_step("uploading")
        return files

    def _remove_superseded(self, asset: str, partition: str | None, key: str, *, keep: str,
                           replaced: dict | None) -> None:
        """Delete the version our commit replaced (and the one it replaced, in case its publisher died before
        cleaning), and uploads that never committed and are `STALE_UPLOAD` old; never what is current now (a
        later publication may have committed after ours)."""
        now = self.manifest(asset, partition)
        live = {keep, now["version"] if now else keep}
        prefix = self._name(asset, VERSIONS, key) + "/"
        ids = {blob.name[len(prefix) :].split("/", 1)[0] for blob in self.bucket.client.list_blobs(
            self.bucket, prefix=prefix)}
        superseded = {replaced["version"], replaced.get("replaces")} if replaced else set()
        for version_id in ids - live:
            if version_id in superseded or _age(version_id) > STALE_UPLOAD:
                self._delete_version(asset, key, version_id)

    def _delete_version(self, asset: str, key: str, version_id: str) -> None:
        prefix = self._name(asset, VERSIONS, key, version_id) + "/"
        for blob in self.bucket.client.list_blobs(self.bucket, prefix=prefix):
            blob.delete()

    def _count(self, direction: str, size: int) -> None:
        self.transferred[direction] += size
        PROCESS_TRANSFERRED[direction] += size

    # ---- names

    def _name(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def _url_of(self, name: str) -> str:
        if self.prefix and not name.startswith(self.prefix + "/"):
            name = self._name(name)
        return f"gs://{self.bucket.name}/{name}"


def _commit_lock(versions: Path) -> Path:
    versions.mkdir(parents=True, exist_ok=True)
    return versions / COMMIT_LOCK


def _point(final: Path, version: Path) -> None:
    """Point the mirror's link at `version` (one `os.replace`, as the local store commits)."""
    link = final.parent / f".link-{final.name}-{uuid.uuid4().hex[:8]}"
    link.symlink_to(version.relative_to(final.parent))
    os.replace(link, final)


def _age(version_id: str) -> timedelta:
    try:
        created = datetime.strptime(version_id.split("-", 1)[0], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return timedelta(0)  # not one of ours: never deleted by age
    return datetime.now(timezone.utc) - created


def _checked_id(version_id: str, where: str) -> str:
    if not version_id or "/" in version_id or version_id.startswith("."):
        raise GcsStoreError(f"{where}: manifest names version {version_id!r}, which cannot name a folder")
    return version_id


def _checked_path(relative: str, where: str) -> str:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise GcsStoreError(f"{where}: manifest lists {relative!r}, which is not a path inside the version")
    return relative
