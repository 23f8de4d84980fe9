"""The artifact store in Google Cloud Storage (``EDUGRAPH_DATA_DIR=gs://<bucket>/<prefix>``), with the local API.

Objects, under ``<prefix>/``:

- ``<asset>/.versions/<key>/<id>/<file>``: every file of one version, uploaded before anything points at it;
- ``<asset>/<key>.manifest.json``: the commit object (`storage.manifest`). ONE small write makes a version
  current; it lists every file with its size and sha256, and carries the lineage record. Readers trust only the
  manifest, so a publication killed at any moment (half its files uploaded, or all of them) leaves the previous
  artifact current; a manifest that is not valid is an error naming it and its field, and nothing is read by it.

Code that needs local paths keeps them: the store's `root` is a local mirror laid out exactly like a local store
(`<asset>/<key>` a link to `.versions/<key>/<id>/`), so `asset_dir`/`current` return local folders. Reading an
artifact materialises its current version into the mirror once per version id (streamed file by file, each
checked against the manifest's size and sha256); `publish` stages into the mirror, so the publishing machine
never downloads what it wrote. `lineage` reads the manifest only. `work_root` is local (under the mirror).

Remote writers (the GCP and Vertex training steps): the store object answers which bucket objects back a mirror
path of a version it read (`remote_source`) and which publication a staging folder is (`remote_staging`), so a
launcher handed the store lets the step read and write the bucket itself (`storage.transfer`); the commit checks
the step's report against the bucket's own size and md5 (and lists nothing unreported) before the manifest names
it. Nothing of the step's output is downloaded.

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
from datetime import timedelta
from pathlib import Path

from edugraph_pipeline.cloud.gcs import GcsError, open_bucket, parse_gs_url
from edugraph_pipeline.storage.local import ArtifactStore
from edugraph_pipeline.storage.manifest import MANIFEST_FORMAT, MANIFEST_SUFFIX, GcsStoreError, parse_manifest
from edugraph_pipeline.storage.transfer import RemoteStaging
from edugraph_pipeline.storage.versions import (
    VERSIONS,
    commit_lock,
    current_version,
    file_sha256,
    locked,
    missing,
    new_version_id,
    partition_folder,
    point,
    remove_stale,
    version_age,
    write_lineage,
)

STALE_UPLOAD = timedelta(hours=24)
MIRROR_FOLDER = "artifacts"  # the mirror's folder inside EDUGRAPH_CACHE_DIR
DATA_DIR_SETTING = "EDUGRAPH_DATA_DIR"
# The points of `publish` at which `on_step` is called (and a kill test stops the process). "uploading" comes
# after the first file is uploaded: a kill there leaves a partial version in the bucket.
PUBLISH_STEPS = ("staged", "content-written", "lineage-written", "uploading", "uploaded", "committed", "cleaned")


class GcsArtifactStore(ArtifactStore):
    def __init__(self, location: str, *, cache_dir: str | os.PathLike,
                 on_step: Callable[[str], None] | None = None, transferred: dict[str, int] | None = None):
        self.url = location.rstrip("/")
        _, self.prefix = parse_gs_url(self.url, named=DATA_DIR_SETTING)
        super().__init__((Path(cache_dir) / MIRROR_FOLDER).expanduser().resolve(), on_step=on_step)
        try:
            self.bucket = open_bucket(self.url, named=DATA_DIR_SETTING)
        except GcsError as error:
            raise GcsStoreError(str(error)) from None
        # bytes this store moved ("uploaded", "downloaded"); pass one dict to several stores to add them up
        self.transferred = transferred if transferred is not None else {"uploaded": 0, "downloaded": 0}
        # version id -> (asset, key, manifest) of the versions read or written through this store object: what
        # `remote_source` answers from
        self._versions: dict[str, tuple[str, str, dict]] = {}
        self._open: dict[str, RemoteStaging] = {}  # staging folder -> its publication, while `publish` runs

    @property
    def location(self) -> str:
        return self.url

    def uri(self, asset: str, partition: str | None = None) -> str:
        """The artifact's name in the bucket (what lineage should record: the mirror path is per machine)."""
        return f"{self.url}/{asset}/{partition_folder(partition)}"

    # ---- reading

    def manifest(self, asset: str, partition: str | None = None) -> dict | None:
        """The commit object of the current version, checked (`storage.manifest`), or None when nothing was
        published."""
        from google.api_core import exceptions as api_errors

        blob = self.bucket.blob(self._name(asset, partition_folder(partition) + MANIFEST_SUFFIX))
        try:
            data = blob.download_as_bytes()
        except api_errors.NotFound:
            return None
        self._count("downloaded", len(data))
        return parse_manifest(data, self._url_of(blob.name))

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        """The local link to the current version, materialised from the bucket (absent when nothing is published)."""
        final = super().asset_dir(asset, partition)
        self._sync(asset, partition, final)
        return final

    def current(self, asset: str, partition: str | None = None) -> Path:
        version = self._sync(asset, partition, super().asset_dir(asset, partition))
        if version is None:
            raise missing(self.uri(asset, partition), asset, partition)
        return version

    def lineage(self, asset: str, partition: str | None = None) -> dict:
        """From the manifest alone: reading lineage downloads no artifact."""
        manifest = self.manifest(asset, partition)
        if manifest is None:
            raise missing(self.uri(asset, partition), asset, partition)
        return manifest["lineage"]

    def _sync(self, asset: str, partition: str | None, final: Path) -> Path | None:
        """Make the mirror's link show the bucket's current version; return that version's local folder."""
        versions = final.parent / VERSIONS / final.name
        manifest = self.manifest(asset, partition)  # checked before the mirror is touched
        if manifest is None:
            if os.path.lexists(final):  # unpublished since this mirror saw it: it must not look current
                with locked(commit_lock(versions)):
                    final.unlink(missing_ok=True)
            return None
        version = versions / manifest["version"]
        self._versions[version.name] = (asset, final.name, manifest)
        if not version.is_dir():
            self._materialise(asset, final.name, manifest, version)
        if current_version(final) != version:
            with locked(commit_lock(versions)):
                point(final, version)
                remove_stale(final, versions, keep=version)
        return version

    def _materialise(self, asset: str, key: str, manifest: dict, version: Path) -> None:
        """Download every file the manifest lists into a private folder, verify it, then rename it into place."""
        from google.api_core import exceptions as api_errors

        version.parent.mkdir(parents=True, exist_ok=True)
        partial = version.parent / f"{version.name}.download-{uuid.uuid4().hex[:8]}"
        lock = partial.parent / f"{partial.name}.lock"  # held while downloading: the mirror's cleaner skips it
        try:
            with locked(lock):
                partial.mkdir()
                for entry in manifest["files"]:  # paths checked by `parse_manifest`: all inside `partial`
                    name = self._name(asset, VERSIONS, key, version.name, entry["path"])
                    target = partial / entry["path"]
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

    # ---- what a training machine reads and writes itself

    def remote_source(self, path: str | os.PathLike) -> dict | None:
        """Where a mirror path of a committed version this store read lies in the bucket: ``{"url", "files"}``
        (the manifest's entries below it, paths relative to `path`); None for any other path."""
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
        below = "/".join(parts[4:])
        files = [{**entry, "path": entry["path"][len(below):].lstrip("/")} for entry in manifest["files"]
                 if not below or entry["path"] == below or entry["path"].startswith(below + "/")]
        if not files:
            return None
        return {"url": self._url_of(self._name(asset, VERSIONS, key, parts[3], below)), "files": files}

    def remote_staging(self, path: str | os.PathLike) -> RemoteStaging | None:
        """The publication open now whose staging folder is `path` (a training job's output dir)."""
        return self._open.get(str(Path(path).resolve()))

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
        remote = RemoteStaging(self._url_of(self._name(asset, VERSIONS, final.name)))
        version_id = None
        committed = False
        try:
            with locked(lock):
                staging.mkdir()
                self._open[str(staging.resolve())] = remote
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
                    local = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
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
                    with locked(commit_lock(versions)):
                        point(final, version)
                        remove_stale(final, versions, keep=version)
                else:  # the mirror holds only what was written here: a reader materialises the version
                    shutil.rmtree(staging, ignore_errors=True)
                self._remove_superseded(asset, partition, final.name, keep=version_id, replaced=replaced)
                self._on_step("cleaned")
        finally:
            self._open.pop(str(staging.resolve()), None)
            lock.unlink(missing_ok=True)
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)
                if version_id is None:
                    version_id = remote.written
                if version_id is not None:
                    # a failed (not killed) upload removes its partial version now rather than after STALE_UPLOAD
                    self._delete_version(asset, final.name, version_id)

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
        """The files a remote writer reported (checked by `RemoteStaging.adopt`) for `version_id`, each checked
        against the bucket's own record of it (size and md5, which GCS computes from the bytes it stored);
        anything else under the version, or a reported file missing or different, fails the publication."""
        where = self._url_of(self._name(asset, VERSIONS, key, version_id))
        prefix = self._name(asset, VERSIONS, key, version_id) + "/"
        stored = {blob.name[len(prefix):]: blob for blob in self.bucket.client.list_blobs(self.bucket, prefix=prefix)}
        files = []
        for entry in reported:
            blob = stored.pop(entry["path"], None)
            if blob is None:
                raise GcsStoreError(f"{where}/{entry['path']}: reported by the training step but not in the bucket")
            if blob.size != entry["size"] or (blob.md5_hash and blob.md5_hash != entry["md5"]):
                raise GcsStoreError(
                    f"{where}/{entry['path']}: the bucket holds {blob.size} bytes (md5 {blob.md5_hash}), the training "
                    f"step reported {entry['size']} (md5 {entry['md5']})"
                )
            files.append({"path": entry["path"], "size": entry["size"], "sha256": entry["sha256"]})
        if stored:
            raise GcsStoreError(f"{where}: holds files the training step did not report: {sorted(stored)[:5]}")
        return files

    # ---- cleaning

    def _remove_superseded(self, asset: str, partition: str | None, key: str, *, keep: str,
                           replaced: dict | None) -> None:
        """Delete the version our commit replaced (and the one it replaced, in case its publisher died before
        cleaning), and uploads that never committed and are `STALE_UPLOAD` old; never what is current now (a
        later publication may have committed after ours)."""
        now = self.manifest(asset, partition)
        live = {keep, now["version"] if now else keep}
        prefix = self._name(asset, VERSIONS, key) + "/"
        ids = {blob.name[len(prefix):].split("/", 1)[0] for blob in self.bucket.client.list_blobs(
            self.bucket, prefix=prefix)}
        superseded = {replaced["version"], replaced.get("replaces")} if replaced else set()
        for version_id in ids - live:
            if version_id in superseded or version_age(version_id) > STALE_UPLOAD:
                self._delete_version(asset, key, version_id)

    def _delete_version(self, asset: str, key: str, version_id: str) -> None:
        prefix = self._name(asset, VERSIONS, key, version_id) + "/"
        for blob in self.bucket.client.list_blobs(self.bucket, prefix=prefix):
            blob.delete()

    def _count(self, direction: str, size: int) -> None:
        self.transferred[direction] += size

    # ---- names

    def _name(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def _url_of(self, name: str) -> str:
        return f"gs://{self.bucket.name}/{name}"
