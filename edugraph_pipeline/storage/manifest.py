"""The GCS store's commit object, ``<asset>/<key>.manifest.json``, and the file lists that travel with it.

A manifest, a remote writer's report of the files it uploaded, and the entries a training step is handed to read
are all outside input: each is checked here before anything is downloaded, listed or committed, and a bad one is a
`GcsStoreError` naming the object it came from, the field, and what was expected.
"""

from __future__ import annotations

import json
import re

from edugraph_pipeline.cloud.gcs import inside

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


class GcsStoreError(RuntimeError):
    """The object store cannot be reached or holds something inconsistent (the message names the URL)."""


class _Invalid(ValueError):
    """One field of a record is wrong (the message names the field; the caller adds where the record came from)."""


def parse_manifest(data: bytes, where: str) -> dict:
    """The manifest in `data` (read from `where`), every field checked; a `GcsStoreError` names what is wrong."""
    try:
        try:
            manifest = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _Invalid(f"not JSON ({error})") from None
        if not isinstance(manifest, dict):
            raise _Invalid(f"a JSON {type(manifest).__name__}, expected an object")
        for field in ("format", "version", "files", "lineage"):
            if field not in manifest:
                raise _Invalid(f"field {field!r} is missing")
        if manifest["format"] != MANIFEST_FORMAT:
            raise _wrong("format", manifest["format"], str(MANIFEST_FORMAT))
        _version_id(manifest["version"], "version")
        if manifest.get("replaces") is not None:
            _version_id(manifest["replaces"], "replaces")
        if not isinstance(manifest["lineage"], dict):
            raise _wrong("lineage", manifest["lineage"], "an object")
        manifest["files"] = _files(manifest["files"], "files", md5=False, whole=False)
    except _Invalid as error:
        raise GcsStoreError(f"{where} is not a valid manifest: {error}") from None
    return manifest


def checked_files(files, where: str, *, field: str = "files", md5: bool = False, whole: bool = False) -> list[dict]:
    """``{"path", "size", "sha256"[, "md5"]}`` entries (a remote writer's report, a step's inputs), each path inside
    its version and named once (`whole`: the empty path, the object at the URL itself, too); a `GcsStoreError`
    names `where` they came from and the field."""
    try:
        return _files(files, field, md5=md5, whole=whole)
    except _Invalid as error:
        raise GcsStoreError(f"{where}: {error}") from None


def checked_id(version_id, where: str, field: str = "version") -> str:
    """A version id that can name one folder (no slash, not hidden, not empty)."""
    try:
        return _version_id(version_id, field)
    except _Invalid as error:
        raise GcsStoreError(f"{where}: {error}") from None


def _files(files, field: str, *, md5: bool, whole: bool) -> list[dict]:
    if not isinstance(files, list):
        raise _wrong(field, files, "a list of files")
    seen: set[str] = set()
    checked = []
    for index, entry in enumerate(files):
        name = f"{field}[{index}]"
        if not isinstance(entry, dict):
            raise _wrong(name, entry, "an object with path, size and sha256")
        path = entry.get("path")
        if not isinstance(path, str):
            raise _wrong(f"{name}.path", path, "a relative path")
        try:
            path = "" if whole and path == "" else inside(path, name)
        except ValueError:
            raise _wrong(f"{name}.path", path, "a path inside the version") from None
        if path in seen:
            raise _Invalid(f"field '{name}.path' names {path!r} a second time")
        seen.add(path)
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _wrong(f"{name}.size", size, "a byte count")
        sha256 = entry.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise _wrong(f"{name}.sha256", sha256, "64 hexadecimal digits")
        record = {"path": path, "size": size, "sha256": sha256}
        if md5:
            if not isinstance(entry.get("md5"), str) or not entry["md5"]:
                raise _wrong(f"{name}.md5", entry.get("md5"), "the file's base64 md5")
            record["md5"] = entry["md5"]
        checked.append(record)
    return checked


def _version_id(version_id, field: str) -> str:
    if (not isinstance(version_id, str) or not version_id or "/" in version_id or "\\" in version_id
            or version_id.startswith(".")):
        raise _wrong(field, version_id, "a version id that can name a folder")
    return version_id


def _wrong(field: str, value, expected: str) -> _Invalid:
    shown = repr(value)
    return _Invalid(f"field {field!r} is {shown[:77] + '...' if len(shown) > 80 else shown}, expected {expected}")
