"""Publish a folder to a Hugging Face Hub repository in one atomic, idempotent commit (`publish_folder`).

`publish_folder` makes the repository's ``main`` branch hold exactly the folder's files (plus any `extra_files`):

* creates the repository when it is missing (``exist_ok``);
* compares the folder with the remote tree first (LFS sha256 / git blob sha1): identical content creates **no**
  commit and uploads nothing; otherwise it makes **one** commit (`HfApi.create_commit`) with the changed and new
  files and the deletion of remote files the folder no longer has (``.gitattributes`` is kept);
* large files go up (LFS/Xet) before the commit, and the commit names its parent (``parentCommit``): a commit lands
  whole or not at all, so a failed publication leaves ``main`` as it was;
* transient failures (HTTP 408/412/429/5xx, dropped connections, timeouts) are retried with exponential backoff up
  to `max_attempts`; each attempt starts again from the remote state, so an attempt whose commit landed but whose
  answer was lost does not commit twice;
* the token never appears in logs, exceptions or the result: errors are re-raised as `PublicationError` with every
  occurrence of the token (and any ``Bearer ...`` value) redacted (`redaction.redact`), without the original
  exception chained.

The endpoint and the token are arguments (the Hub resource binds ``HF_ENDPOINT`` and ``HF_TOKEN``); this module
reads no environment. ``HF_HUB_DISABLE_XET=1`` makes huggingface_hub use the classic LFS protocol instead of Xet
(needed for servers that only speak LFS, such as the test stand-in).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edugraph_pipeline.publishing.targets import is_repo_id
from edugraph_pipeline.redaction import redact
from edugraph_pipeline.storage import file_sha256

log = logging.getLogger(__name__)

KEEP_REMOTE = frozenset({".gitattributes"})
# Never published from a folder (mirrors huggingface_hub's DEFAULT_IGNORE_PATTERNS plus local noise).
IGNORED_PARTS = frozenset({".git", ".cache", "__pycache__", ".ipynb_checkpoints"})
IGNORED_NAMES = frozenset({".DS_Store"})
TRANSIENT_STATUS = frozenset({408, 409, 412, 423, 429, 500, 502, 503, 504})


class PublicationError(RuntimeError):
    """A publication failed. Its message never contains the token; the repository's main branch is unchanged
    unless `landed` says a commit was made before the failure was noticed."""

    def __init__(self, message: str, *, repo_id: str, attempts: int, transient: bool, status: int | None = None):
        super().__init__(message)
        self.repo_id = repo_id
        self.attempts = attempts
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class PublishResult:
    """Where the content now is. `commit_id` is the ``main`` revision holding it: the new commit, or the existing
    head when nothing changed (`created_commit` False); None only if the Hub did not report one."""

    repo_id: str
    repo_type: str
    commit_id: str | None
    created_commit: bool
    url: str
    files: tuple[str, ...]
    previous_commit: str | None = None
    commit_url: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = list(self.files)
        return data


# ------------------------------------------------------------------------------------------------------ helpers
def normalise_endpoint(endpoint: str) -> str:
    """The Hub endpoint without a trailing slash; an empty or non-http(s) one is refused, naming it."""
    value = (endpoint or "").strip().rstrip("/")
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"Hub endpoint {endpoint!r}: expected an http(s) URL (HF_ENDPOINT)")
    return value


def require_token(token: str | None) -> str:
    if not token:
        raise PublicationError(
            "no Hugging Face token: set HF_TOKEN (or pass token=)", repo_id="", attempts=0, transient=False
        )
    return token


def repo_url(endpoint: str, repo_id: str, repo_type: str) -> str:
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo_type]
    return f"{endpoint}/{prefix}{repo_id}"


def _git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> dict[str, Path]:
    """The files to publish from `folder`, keyed by their POSIX path in the repository."""
    out: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder)
        if IGNORED_PARTS.intersection(rel.parts[:-1]) or rel.name in IGNORED_NAMES or rel.parts[0] in IGNORED_PARTS:
            continue
        out[rel.as_posix()] = path
    return out


def _status_of(exc: BaseException) -> int | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status
        exc = exc.__cause__ or exc.__context__
    return None


def _is_transient(exc: BaseException) -> bool:
    import httpx2

    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError)):
            return True
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
    status = _status_of(exc)
    return status in TRANSIENT_STATUS


def _describe(exc: BaseException) -> str:
    """`exc` and its causes in one line each (redaction happens in the caller)."""
    parts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        text = str(current).strip().splitlines()
        parts.append(f"{type(current).__name__}: {' '.join(line.strip() for line in text if line.strip())[:500]}")
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)


# --------------------------------------------------------------------------------------------------- publishing
def _remote_state(api, repo_id: str, repo_type: str) -> tuple[str | None, dict[str, Any]]:
    """(head commit of main, {path: RepoFile}) - (None, {}) for a repository without commits."""
    from huggingface_hub import RepoFile
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        info = api.repo_info(repo_id, repo_type=repo_type, revision="main")
    except RevisionNotFoundError:
        return None, {}
    head = info.sha
    tree = {
        item.path: item
        for item in api.list_repo_tree(repo_id, recursive=True, revision=head or "main", repo_type=repo_type)
        if isinstance(item, RepoFile)
    }
    return head, tree


def _changes(
    local: Mapping[str, Path | bytes], remote: Mapping[str, Any], delete_stale: bool
) -> tuple[list[str], list[str]]:
    """(paths to upload, remote paths to delete)."""
    upload = []
    for path, source in local.items():
        entry = remote.get(path)
        if entry is None:
            upload.append(path)
            continue
        if isinstance(source, bytes):
            same = (
                entry.lfs.sha256 == hashlib.sha256(source).hexdigest()
                if entry.lfs is not None
                else entry.blob_id == hashlib.sha1(b"blob %d\0" % len(source) + source).hexdigest()
            )
        elif entry.size != source.stat().st_size:
            same = False
        else:
            same = entry.lfs.sha256 == file_sha256(source) if entry.lfs is not None else entry.blob_id == _git_blob_sha1(source)
        if not same:
            upload.append(path)
    delete = sorted(set(remote) - set(local) - KEEP_REMOTE) if delete_stale else []
    return upload, delete


def publish_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    repo_type: str = "model",
    token: str | None = None,
    endpoint: str,
    commit_message: str,
    commit_description: str | None = None,
    private: bool = False,
    max_attempts: int = 3,
    extra_files: Mapping[str, bytes | str] | None = None,
    delete_stale: bool = True,
    retry_wait: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishResult:
    """Make `repo_id`'s main branch hold the files of `folder` (and `extra_files`, e.g. a README.md rendered
    separately) in one commit, or in none if it already does. See the module docstring for the guarantees."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if repo_type not in ("model", "dataset", "space"):
        raise ValueError(f"repo_type must be model, dataset or space, not {repo_type!r}")
    if not is_repo_id(repo_id):
        raise ValueError(f"repo_id must look like 'namespace/name', not {repo_id!r}")
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    endpoint = normalise_endpoint(endpoint)
    token = require_token(token)

    local: dict[str, Path | bytes] = dict(folder_files(folder))
    for path, content in (extra_files or {}).items():
        local[path] = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    if not local:
        raise ValueError(f"{folder} holds no files to publish")
    files = tuple(sorted(local))

    api = HfApi(endpoint=endpoint, token=token, library_name="edugraph-pipeline")
    url = repo_url(endpoint, repo_id, repo_type)
    first_head: str | None = None
    known_first_head = False
    failure: tuple[str, bool, int | None] | None = None
    attempt = 0
    for attempt in range(1, max_attempts + 1):
        try:
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
            head, remote = _remote_state(api, repo_id, repo_type)
            if not known_first_head:
                first_head, known_first_head = head, True
            upload, delete = _changes(local, remote, delete_stale)
            if not upload and not delete:
                created = head != first_head
                log.info(
                    "%s %s is up to date at %s (%s)", repo_type, repo_id, head,
                    "committed by an earlier attempt" if created else "no new commit",
                )
                return PublishResult(repo_id, repo_type, head, created, url, files, first_head, None, attempt)
            commit = _commit(api, repo_id, repo_type, local, upload, delete, head, commit_message, commit_description)
            # huggingface_hub skips a commit itself when its preupload finds nothing changed (and then answers the
            # current head): only a different revision is a new commit.
            created = commit.oid != first_head
            log.info(
                "published %d changed and %d deleted file(s) to %s %s: commit %s",
                len(upload), len(delete), repo_type, repo_id, commit.oid,
            )
            return PublishResult(
                repo_id, repo_type, commit.oid, created, url, files, first_head, commit.commit_url if created else None,
                attempt,
            )
        except Exception as exc:  # noqa: BLE001 - classified, scrubbed and re-raised below
            transient = _is_transient(exc)
            message = redact(_describe(exc), [token])
            failure = (message, transient, _status_of(exc))
            if not transient or attempt == max_attempts:
                break
            wait = retry_wait * 2 ** (attempt - 1)
            log.warning(
                "publishing to %s %s failed (attempt %d/%d, retrying in %.1fs): %s",
                repo_type, repo_id, attempt, max_attempts, wait, message,
            )
        sleep(wait)
    # Raised outside the `except` block: the original exception (which may hold request details) is neither chained
    # nor kept as context.
    assert failure is not None
    message, transient, status = failure
    log.error("publishing to %s %s failed after %d attempt(s): %s", repo_type, repo_id, attempt, message)
    raise PublicationError(
        f"publishing {folder} to {repo_type} repo {repo_id} at {endpoint} failed after {attempt} attempt(s)"
        f" ({'transient' if transient else 'permanent'} error); main is unchanged unless an earlier attempt's commit"
        f" landed: {message}",
        repo_id=repo_id,
        attempts=attempt,
        transient=transient,
        status=status,
    )


def _commit(api, repo_id, repo_type, local, upload, delete, parent, commit_message, commit_description):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    operations: list = [CommitOperationDelete(path_in_repo=path) for path in delete]
    for path in upload:
        source = local[path]
        operations.append(
            CommitOperationAdd(path_in_repo=path, path_or_fileobj=source if isinstance(source, bytes) else str(source))
        )
    return api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message,
        commit_description=commit_description,
        repo_type=repo_type,
        parent_commit=parent,
    )
