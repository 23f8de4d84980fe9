"""A GCS store's versions as a machine other than the publisher uses them (the gcp and vertex training steps): a
committed version read straight from the bucket, checked file by file against its manifest entries, and a
publication's files written straight into a fresh version below the publication's URL and reported (size,
sha256, md5) for the publisher to check and commit (`RemoteStaging`: the open publication as the writer sees it).
The entries handed in are checked like a manifest's: no path outside the destination is ever written.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from edugraph_pipeline.cloud.gcs import parse_gs_url
from edugraph_pipeline.storage.manifest import GcsStoreError, checked_files, checked_id
from edugraph_pipeline.storage.versions import file_sha256, new_version_id

INLINE_LIMIT = 64 * 1024  # JSON outputs up to this size also travel in the report (the asset reads its result)


class RemoteStaging:
    """An open publication as a remote writer sees it: `versions_url` is where it creates ``<id>/<files>``
    (`write_version`); `adopt` hands the result to the publication, which checks it against the
    bucket when it commits."""

    def __init__(self, versions_url: str) -> None:
        self.versions_url = versions_url
        self.written: str | None = None  # the version the writer says it wrote: deleted unless it is committed
        self.adopted: tuple[str, list[dict]] | None = None

    def adopt(self, version_id: str, files: list[dict]) -> None:
        """The version `version_id` under `versions_url` holds `files` (``path``, ``size``, ``sha256``, ``md5``)."""
        if self.written is not None and self.written != version_id:
            raise GcsStoreError(f"{self.versions_url}: the publication already holds version {self.written}")
        self.written = checked_id(version_id, f"{self.versions_url} (the training step's report)")
        report = f"{self.versions_url}/{version_id} (the training step's report)"
        self.adopted = (version_id, checked_files(files, report, md5=True))


def read_version(gcs, source: dict, destination: str) -> int:
    """Download the committed files `source` names (``{"url", "files"}``: the version's folder, or one file of it
    for the entry with an empty path) below `destination`, each checked against its entry; returns the bytes."""
    bucket_name, name = parse_gs_url(source["url"], named="store input")
    files = checked_files(source.get("files"), source["url"], whole=True)
    bucket = gcs.bucket(bucket_name)
    total = 0
    for entry in files:
        relative = entry["path"]
        target = Path(destination + (f"/{relative}" if relative else ""))
        url = f"gs://{bucket_name}/{name}" + (f"/{relative}" if relative else "")
        target.parent.mkdir(parents=True, exist_ok=True)
        bucket.blob(f"{name}/{relative}" if relative else name).download_to_filename(str(target))
        size = target.stat().st_size
        if size != entry["size"] or file_sha256(target) != entry["sha256"]:
            target.unlink()
            raise GcsStoreError(
                f"{url} does not match the store's manifest (size {size}, expected {entry['size']}, or another sha256)"
            )
        total += size
    return total


def write_version(gcs, versions_url: str, source: str) -> dict:
    """Upload the folder `source` to a fresh version ``<versions_url>/<id>/``; returns the report the publisher
    checks and adopts: ``{"version", "files": [{path, size, sha256, md5}], "inline": {small JSON files}}``."""
    bucket_name, name = parse_gs_url(versions_url, named="store output", folder_required=True)
    bucket = gcs.bucket(bucket_name)
    version = new_version_id()  # taken as the upload starts: the store's cleaner reads the upload's age from it
    files, inline = [], {}
    base = Path(source)
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        relative = path.relative_to(base).as_posix()
        bucket.blob(f"{name}/{version}/{relative}").upload_from_filename(str(path))
        with path.open("rb") as handle:
            md5 = base64.b64encode(hashlib.file_digest(handle, "md5").digest()).decode("ascii")
        size = path.stat().st_size
        files.append({"path": relative, "size": size, "sha256": file_sha256(path), "md5": md5})
        if relative.endswith(".json") and size <= INLINE_LIMIT:
            inline[relative] = path.read_text(encoding="utf-8")
    return {"version": version, "files": files, "inline": inline}
