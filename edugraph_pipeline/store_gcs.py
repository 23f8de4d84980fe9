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

Remote writers (the GCP and Vertex training steps, issue 15 item 2): a machine other than the publisher may read
a committed version straight from the bucket (`remote_source`: its objects and the manifest entries to check them
against) and write a publication's files straight into it (`remote_staging`: the publication's ``.versions/<key>``
URL; the writer uploads to a fresh ``<id>/`` below it and reports every file's size, sha256 and md5, then
`RemoteStaging.adopt`). The commit checks each reported file against the bucket's own size and md5 (and lists
nothing unreported) before the manifest names it; files the publisher wrote locally beside it (its lineage, small
records) are uploaded into the same version. Nothing of the step's output is downloaded; the publisher's mirror
keeps no partial copy (the next reader materialises the version like any other).

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
    VERSIONS,
    ArtifactStore,
    _current_version,
    _for,
    _locked,
    _remove_stale,
    default_cache_dir,
    file_sha256,
    new_version_id,
    write_lineage,
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


# The mirror roots of the stores opened in this process, and the publications open now (by local staging folder):
# how a launcher that gets only a job's paths finds what in the bucket they stand for.
_STORES: dict[str, GcsArtifactStore] = {}
_OPEN: dict[str, RemoteStaging] = {}
_SEEN: dict[str, dict[str, tuple[str, str, dict]]] = {}


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
        # version id -> (asset, key, manifest) of the versions this process read or wrote through this mirror
        self._versions = _SEEN.setdefault(str(self.root), {})
        _STORES[str(self.root)] = self

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
        self._versions[version.name] = (asset, final.name, manifest)
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
        remote = RemoteStaging(self, asset, final.name, staging)
        version_id = None
        committed = False
        try:
            with _locked(lock):
                staging.mkdir()
                _OPEN[str(staging)] = remote
                self._on_step("staged")
                yield staging
                self._on_step("content-written")
                record = write_lineage(staging, asset, partition, lineage)
                self._on_step("lineage-written")
                if remote.adopted is None:
                    version_id = new_version_id()  # taken now: the id's age is the upload's age (see STALE_UPLOAD)
                    files = self._upload(asset, final.name, version_id, staging)
                else:  # the step wrote the files into the bucket: check them, add what was written here
                    version_id = remote.adopted[0]
                    files = self._verified(asset, final.name, version_id, remote.adopted[1])
                    written = {entry["path"]: entry for entry in files}
                    local = self._local_files(staging)
                    files = [e for e in files if e["path"] not in local] + self._upload(
                        asset, final.name, version_id, staging, skip=written)
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
                self._versions[version_id] = (asset, final.name, manifest)
                if remote.adopted is None:
                    version = versions / version_id
                    os.rename(staging, version)  # the mirror holds what was uploaded: nothing to download
                    with _locked(_commit_lock(versions)):
                        _point(final, version)
                        _remove_stale(final, versions, keep=version)
                else:  # the mirror holds only what was written here: a reader materialises the version
                    shutil.rmtree(staging, ignore_errors=True)
                self._remove_superseded(asset, partition, final.name, keep=version_id, replaced=replaced)
                self._on_step("cleaned")
        finally:
            _OPEN.pop(str(staging), None)
            lock.unlink(missing_ok=True)
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)
                if version_id is None and remote.adopted is not None:
                    version_id = remote.adopted[0]
                if version_id is not None:
                    # a failed (not killed) upload removes its partial version now rather than after STALE_UPLOAD
                    self._delete_version(asset, final.name, version_id)

    @staticmethod
    def _local_files(staging: Path) -> set[str]:
        return {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}

    def _upload(self, asset: str, key: str, version_id: str, staging: Path, *,
                skip: dict[str, dict] | None = None) -> list[dict]:
        """Upload the staging folder's files; one already in the bucket with the same sha256 (`skip`: a remote
        writer's report, e.g. its result file copied here) is listed without uploading it again."""
        files = []
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            relative = path.relative_to(staging).as_posix()
            size = path.stat().st_size
            known = (skip or {}).get(relative)
            if known is not None and known["size"] == size and known["sha256"] == file_sha256(path):
                files.append(known)
                continue
            # resumable, chunked upload above the client's threshold: large files are never read into memory
            self.bucket.blob(self._name(asset, VERSIONS, key, version_id, relative)).upload_from_filename(str(path))
            self._count("uploaded", size)
            files.append({"path": relative, "size": size, "sha256": file_sha256(path)})
            if len(files) == 1:
                self._on_step("uploading")
        return files

    def _verified(self, asset: str, key: str, version_id: str, reported: list[dict]) -> list[dict]:
        """The files a remote writer reported for `version_id`, each checked against the bucket's own record of
        it (size and md5, which GCS computes from the bytes it stored); anything else under the version, or a
        reported file missing or different, fails the publication (nothing is committed)."""
        where = self._url_of(self._name(asset, VERSIONS, key, version_id))
        _checked_id(version_id, where)
        prefix = self._name(asset, VERSIONS, key, version_id) + "/"
        stored = {blob.name[len(prefix):]: blob for blob in self.bucket.client.list_blobs(self.bucket, prefix=prefix)}
        files = []
        for entry in reported:
            relative = _checked_path(entry["path"], where)
            blob = stored.pop(relative, None)
            if blob is None:
                raise GcsStoreError(f"{where}/{relative}: reported by the training step but not in the bucket")
            if blob.size != entry["size"] or (blob.md5_hash and entry.get("md5") and blob.md5_hash != entry["md5"]):
                raise GcsStoreError(
                    f"{where}/{relative}: the bucket holds {blob.size} bytes (md5 {blob.md5_hash}), the training step "
                    f"reported {entry['size']} (md5 {entry.get('md5')})"
                )
            files.append({"path": relative, "size": entry["size"], "sha256": entry["sha256"]})
        if stored:
            raise GcsStoreError(f"{where}: holds files the training step did not report: {sorted(stored)[:5]}")
        return files

    def remote_source(self, path: Path) -> dict | None:
        """Where a mirror path of a committed version lies in the bucket: ``{"url", "files"}`` (the manifest's
        entries below it, paths relative to `path`); None when `path` is not inside a version this store read."""
        try:
            relative = Path(path).resolve().relative_to(self.root)
        except ValueError:
            return None
        parts = relative.parts
        if len(parts) < 4 or parts[1] != VERSIONS or parts[3] not in self._versions:
            return None
        asset, key, manifest = self._versions[parts[3]]
        if (parts[0], parts[2]) != (asset, key):
            return None
        inside = "/".join(parts[4:])
        files = []
        for entry in manifest["files"]:
            if not inside or entry["path"] == inside or entry["path"].startswith(inside + "/"):
                files.append({**entry, "path": entry["path"][len(inside):].lstrip("/")})
        if not files:
            return None
        name = self._name(asset, VERSIONS, key, parts[3], inside)
        return {"url": f"gs://{self.bucket.name}/{name}", "files": files}

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


class RemoteStaging:
    """An open publication as a remote writer sees it: `versions_url` is where it creates ``<id>/<files>``
    (a fresh id taken when its upload starts, `storage.new_version_id`); `adopt` hands the result to the
    publication, which checks it against the bucket when it commits."""

    def __init__(self, store: GcsArtifactStore, asset: str, key: str, local: Path) -> None:
        self.store, self.asset, self.key, self.local = store, asset, key, local
        self.adopted: tuple[str, list[dict]] | None = None

    @property
    def versions_url(self) -> str:
        return f"gs://{self.store.bucket.name}/{self.store._name(self.asset, VERSIONS, self.key)}"

    def adopt(self, version_id: str, files: list[dict]) -> None:
        """The version `version_id` under `versions_url` holds `files` (``path``, ``size``, ``sha256``, ``md5``)."""
        if self.adopted is not None and self.adopted[0] != version_id:
            raise GcsStoreError(f"{self.versions_url}: the publication already holds version {self.adopted[0]}")
        self.adopted = (_checked_id(version_id, self.versions_url), list(files))


def remote_staging(path: str | os.PathLike) -> RemoteStaging | None:
    """The open publication whose local staging folder is `path` (a training job's output dir), if its store
    is in GCS; None otherwise (a local store: the step writes the folder itself)."""
    return _OPEN.get(str(Path(path).resolve()))


def remote_source(path: str | os.PathLike) -> dict | None:
    """`GcsArtifactStore.remote_source` of whichever store opened in this process mirrors `path`."""
    resolved = Path(path).resolve()
    for root, store in list(_STORES.items()):
        if resolved.is_relative_to(root):
            return store.remote_source(resolved)
    return None


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
