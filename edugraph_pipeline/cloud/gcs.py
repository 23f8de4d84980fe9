"""Google Cloud Storage, the one way in: the client (a GCS emulator or Application Default Credentials), the one
``gs://`` parser, a bucket checked before use, and file trees copied to and from a bucket folder.

Object names read back from a bucket are outside input: a name that would land outside the destination folder
(``..``, an absolute part) is refused, never written.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from edugraph_pipeline import settings

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"  # google-cloud-storage's own switch to an emulator
PUBLIC_ENDPOINT = "storage.googleapis.com"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


class GcsError(RuntimeError):
    """A bucket cannot be reached or used (the message names the URL and what is missing)."""


def emulator_host() -> str:
    """``STORAGE_EMULATOR_HOST`` ("" when unset): with it every Google client here goes anonymous."""
    return settings.other_tool(EMULATOR_ENV)


def client(project: str | None = None):
    """A google-cloud-storage client: anonymous against ``STORAGE_EMULATOR_HOST``, else Application Default
    Credentials (on a training machine: its service account, through the metadata server)."""
    from google.cloud import storage

    if emulator_host():
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=project or "edugraph-emulator", credentials=AnonymousCredentials())
    return storage.Client(project=project)


def parse_gs_url(url: str, *, named: str = "", folder_required: bool = False) -> tuple[str, str]:
    """(bucket, folder) of ``gs://<bucket>[/<folder>]``, the folder without leading or trailing slash. `named` is
    the setting the URL came from, named in the error; `folder_required` refuses a bare bucket."""
    label = f"{named}={url!r}" if named else repr(url)
    expected = "expected gs://<bucket>/<folder>"
    if not url.startswith("gs://"):
        raise ValueError(f"{label}: not a gs:// URL ({expected})")
    bucket, _, folder = url[len("gs://"):].partition("/")
    if not bucket:
        raise ValueError(f"{label}: no bucket name ({expected})")
    if not _BUCKET_NAME.fullmatch(bucket):
        raise ValueError(f"{label}: {bucket!r} is not a bucket name ({expected})")
    folder = folder.strip("/")
    if folder_required and not folder:
        raise ValueError(f"{label}: no folder inside the bucket ({expected})")
    if ".." in folder.split("/"):
        raise ValueError(f"{label}: the folder must not contain '..' ({expected})")
    return bucket, folder


def open_bucket(url: str, *, named: str):
    """The bucket of `url`, checked by listing one object below it (the permission its users need anyway):
    missing credentials, a missing bucket or an unreachable endpoint fail here as `GcsError`, naming
    ``<named>=<url>``."""
    from google.api_core import exceptions as api_errors
    from google.api_core.retry import Retry
    from google.auth import exceptions as auth_errors

    bucket_name, prefix = parse_gs_url(url, named=named)
    endpoint = emulator_host() or PUBLIC_ENDPOINT
    try:
        gcs = client()
    except (auth_errors.DefaultCredentialsError, OSError) as error:
        raise GcsError(
            f"{named}={url}: no Google Cloud credentials ({type(error).__name__}: {error}); run "
            f"`gcloud auth application-default login` (or use a service account), or set {EMULATOR_ENV} "
            "to a GCS emulator"
        ) from None
    try:
        next(iter(gcs.list_blobs(bucket_name, prefix=prefix, max_results=1, timeout=20, retry=Retry(timeout=30))), None)
    except api_errors.NotFound:
        raise GcsError(f"{named}={url}: bucket {bucket_name} does not exist ({endpoint})") from None
    except api_errors.Forbidden as error:
        raise GcsError(f"{named}={url}: no permission to list objects ({error.message})") from None
    except Exception as error:  # connection refused, timeouts: the transport's own types vary
        raise GcsError(f"{named}={url}: {endpoint} does not answer ({type(error).__name__}: {error})") from None
    return gcs.bucket(bucket_name)


def inside(relative: str, where: str) -> str:
    """`relative` (a path read from a bucket or a record in it) if it names a place inside a folder; else a
    `ValueError` naming `where` it came from."""
    path = PurePosixPath(relative)
    if not relative or path.is_absolute() or ".." in path.parts or "\\" in relative or "\0" in relative:
        raise ValueError(f"{where}: {relative!r} is not a path inside its folder")
    return path.as_posix()


# ---- file trees under ``<root>/files<absolute path>``: how the launchers stage a job's local paths


def staged_name(root: str, path: str) -> str:
    """Where a local path is staged: ``<root>/files<absolute path>``."""
    return f"{root}/files{path}"


def upload_tree(bucket, root: str, path: str, source: str | None = None) -> int:
    """Upload the file or folder `source` (default `path`) to ``<root>/files<path>``; returns the file count."""
    base = Path(source or path)
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
    for file in files:
        relative = "" if file == base else "/" + file.relative_to(base).as_posix()
        bucket.blob(staged_name(root, path) + relative).upload_from_filename(str(file))
    return len(files)


def download_tree(gcs, bucket_name: str, root: str, path: str, destination: str | None = None) -> int:
    """Download ``<root>/files<path>`` (a file or a folder) to `destination` (default `path`); returns the file
    count. An object whose name would land outside `destination` is refused before anything is written."""
    destination = destination or path
    prefix = staged_name(root, path)
    targets = []
    for blob in gcs.list_blobs(bucket_name, prefix=prefix):
        if blob.name != prefix and not blob.name.startswith(prefix + "/"):
            continue  # a sibling that merely shares the name prefix
        tail = blob.name[len(prefix):]
        if tail:
            inside(tail.removeprefix("/"), f"gs://{bucket_name}/{blob.name}")
        targets.append((blob, Path(destination + tail)))
    for blob, target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
    return len(targets)
