"""Content releases published as Hugging Face Hub dataset repositories: `hf://datasets/<namespace>/<name>[@<revision>]`.

Upstream's generator pushes every content release to a dataset repo (ImageFolder layout: `train/` and
`validation/`, each with `metadata.jsonl` and images under `<generator>/`) and tags it `vX.Y.Z`. A release is read
as one snapshot of one commit: the revision (tag, branch or sha; `main` when none is given) is resolved to its
commit sha first, and that sha is both what is downloaded and the content version, so a moved tag is a different
release. Only the metadata files and the images next to them are downloaded (no README, stats or provenance).

The Hub is outside input: the commit it resolves a revision to must be a 40-hex sha (it names a cache folder),
the files it lists must be plain relative paths, and a release may hold at most `max_bytes`
(`MAX_SNAPSHOT_BYTES`, the same cap as an archive release's unpacked size) by the Hub's listed sizes and by the
bytes actually downloaded.

Snapshots are plain files under `<cache>/hf-datasets/<namespace>/<name>/snapshots/<sha>/`. A download goes to
`downloads/<sha>/` first (huggingface_hub's `local_dir` mode: an interrupted download resumes there), is checked,
and is then moved to `snapshots/<sha>/` in one step; `refs/<revision>` holds the sha and is written only once the
snapshot is complete, so offline mode can use exactly the revisions fetched before and fails naming the revision
otherwise. Endpoint, token and offline mode come in as a `HubAccess`; the token is only ever handed to
huggingface_hub, and error messages are redacted of it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from edugraph_pipeline.commits import checked_commit, is_commit_sha
from edugraph_pipeline.redaction import redact
from edugraph_pipeline.releases import content_tag_key, is_content_tag
from edugraph_pipeline.worksheets.archive import MAX_TOTAL_BYTES

HF_DATASET_PREFIX = "hf://datasets/"
DEFAULT_REVISION = "main"
METADATA_FILE = "metadata.jsonl"
MAX_SNAPSHOT_BYTES = MAX_TOTAL_BYTES  # a Hub release may hold what an archive release may unpack to
# The images a release may hold (content decides the format later; this only keeps other files off the wire).
IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff")
_SOURCE = re.compile(r"^hf://datasets/(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[^@\s]+))?$")


class HubSourceError(RuntimeError):
    """The Hub dataset cannot be read as a content release; the message names the repository and revision."""


@dataclass(frozen=True)
class HubAccess:
    """How to reach the Hub: its endpoint, the token (None: anonymous) and whether to stay offline."""

    endpoint: str
    token: str | None = None
    offline: bool = False

    @classmethod
    def configured(cls) -> HubAccess:
        """``HF_ENDPOINT``, ``HF_TOKEN`` and ``HF_HUB_OFFLINE`` from the settings: for callers that pass no access
        (`worksheets.content.read_hub_release` does not yet)."""
        from edugraph_pipeline import settings

        return cls(settings.setting("HF_ENDPOINT").rstrip("/"), settings.hub_token(), settings.hub_offline())


@dataclass(frozen=True)
class HubDataset:
    repo_id: str
    revision: str | None  # as written in the source; None: `main`

    @property
    def display(self) -> str:
        return f"{HF_DATASET_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True)
class HubSnapshot:
    folder: Path  # the release's files, as plain files
    revision: str  # what was asked for (a tag, a branch, a sha)
    commit: str  # the commit sha it resolved to: the content version


def is_hub_source(source: str) -> bool:
    return source.startswith("hf://")


def parse_source(source: str) -> HubDataset:
    match = _SOURCE.match(source.strip())
    if not match:
        raise HubSourceError(
            f"content source {source!r}: expected hf://datasets/<namespace>/<name>[@<revision>] "
            "(only dataset repositories hold content releases)"
        )
    return HubDataset(match["repo"], match["revision"])


def release_id(tag: str, commit: str) -> str:
    """How a sensor names one release of a Hub series: the tag and the commit it pointed at (a moved tag is new)."""
    return f"{tag}@{commit}"


def split_release_id(release: str) -> tuple[str, str | None]:
    """(revision to record, commit to download) of a `release_id`, or of a bare revision (commit None)."""
    tag, _, commit = release.rpartition("@")
    if tag and is_commit_sha(commit):
        return tag, commit
    return release, None


def _offline(access: HubAccess) -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or access.offline


def _api(access: HubAccess):
    from huggingface_hub import HfApi

    return HfApi(endpoint=access.endpoint, token=access.token or None)


def _hub_error(dataset: HubDataset, revision: str, error: Exception, access: HubAccess) -> HubSourceError:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    where = f"{HF_DATASET_PREFIX}{dataset.repo_id}"
    if isinstance(error, RevisionNotFoundError):
        return HubSourceError(f"{where}: has no revision {revision!r} (no such tag, branch or commit)")
    if isinstance(error, RepositoryNotFoundError):
        return HubSourceError(f"{where}: dataset repository not found at {access.endpoint} (private? set HF_TOKEN)")
    detail = redact(f"{type(error).__name__}: {error}", [access.token]).splitlines()[0]
    return HubSourceError(f"{where}@{revision}: cannot reach the Hub at {access.endpoint}: {detail}")


def list_release_refs(source: str, access: HubAccess | None = None) -> list[tuple[str, str]]:
    """(tag, commit) of every content tag (vX.Y.Z, vX.Y.Z-NN) of the dataset repo, in release order (newest last);
    a tag whose commit is not a 40-hex sha is refused, naming it."""
    dataset = parse_source(source)
    access = access or HubAccess.configured()
    try:
        refs = _api(access).list_repo_refs(dataset.repo_id, repo_type="dataset")
    except Exception as error:  # huggingface_hub raises HTTP, connection and offline errors alike
        raise _hub_error(dataset, "refs", error, access) from error
    tags = [(ref.name, ref.target_commit) for ref in refs.tags if is_content_tag(ref.name)]
    for tag, commit in tags:
        _check_commit(dataset, tag, commit)
    return sorted(tags, key=lambda pair: content_tag_key(pair[0]))


def _check_commit(dataset: HubDataset, revision: str, commit: str | None) -> str:
    """`commit` when it is a 40-hex sha; it names a cache folder, so anything else is refused before use."""
    return checked_commit(f"{HF_DATASET_PREFIX}{dataset.repo_id}@{revision}", commit, HubSourceError)


def _repo_cache(cache_dir: Path, repo_id: str) -> Path:
    return Path(cache_dir) / "hf-datasets" / repo_id


def _ref_file(repo_cache: Path, revision: str) -> Path:
    return repo_cache / "refs" / quote(revision, safe="")


def release_patterns(files: list[str]) -> list[str]:
    """Download patterns for the metadata files of a release and the images beside them (at any depth)."""
    folders = sorted({path.rpartition("/")[0] for path in files if path.rpartition("/")[2] == METADATA_FILE})
    patterns = []
    for folder in folders:
        prefix = f"{folder}/" if folder else ""
        patterns.append(prefix + METADATA_FILE)
        patterns.extend(f"{prefix}*.{suffix}" for ext in IMAGE_SUFFIXES for suffix in (ext, ext.upper()))
    return patterns


def _release_files(
    dataset: HubDataset, revision: str, commit: str, tree: dict[str, int], max_bytes: int
) -> tuple[dict[str, int], list[str]]:
    """({path: size} of the release's files, the download patterns selecting them): the metadata files and the
    images beside them, checked: plain relative paths, at most `max_bytes` together."""
    from huggingface_hub.utils import filter_repo_objects

    where = f"{HF_DATASET_PREFIX}{dataset.repo_id}@{revision} ({commit[:12]})"
    patterns = release_patterns(sorted(tree))
    if not patterns:
        raise HubSourceError(
            f"{where}: no {METADATA_FILE} in the repository "
            f"(a content release has train/{METADATA_FILE} and validation/{METADATA_FILE}, or one at its root)"
        )
    wanted = {path: tree[path] for path in filter_repo_objects(sorted(tree), allow_patterns=patterns)}
    total = 0
    for path, size in wanted.items():
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts or "\\" in path:
            raise HubSourceError(f"{where}: file path {path!r} leaves the release folder; refusing the release")
        total += size
        if total > max_bytes:
            raise HubSourceError(
                f"{where}: {path} ({size} bytes) brings the release to {total} bytes, more than the cap of "
                f"{max_bytes} bytes for a Hub content release; nothing was downloaded"
            )
    return wanted, patterns


def _check_download(where: str, folder: Path, wanted: dict[str, int], max_bytes: int) -> None:
    """Every wanted file arrived with the size the Hub listed (so the cap holds for the bytes on disk too)."""
    total = 0
    for path, size in wanted.items():
        file = folder / path
        actual = file.stat().st_size if file.is_file() else None
        if actual != size:
            got = "nothing" if actual is None else f"{actual} bytes"
            raise HubSourceError(f"{where}: {path}: the Hub listed {size} bytes, the download gave {got}")
        total += actual
        if total > max_bytes:
            raise HubSourceError(f"{where}: {path} brings the release to {total} bytes, more than the cap of {max_bytes}")


def download_release(
    source: str,
    cache_dir: Path,
    release: str | None = None,
    *,
    access: HubAccess | None = None,
    max_bytes: int = MAX_SNAPSHOT_BYTES,
) -> HubSnapshot:
    """The snapshot of the release `source` names (or `release`: a `release_id` or a revision), downloaded once.
    `access` None: `HubAccess.configured()`."""
    dataset = parse_source(source)
    access = access or HubAccess.configured()
    revision, commit = split_release_id(release) if release else (dataset.revision or DEFAULT_REVISION, None)
    where = f"{HF_DATASET_PREFIX}{dataset.repo_id}@{revision}"
    repo_cache = _repo_cache(cache_dir, dataset.repo_id)
    if _offline(access):
        ref = _ref_file(repo_cache, commit or revision)
        if not ref.is_file():
            raise HubSourceError(
                f"{where}: offline mode (HF_HUB_OFFLINE) and this revision is not in the cache {repo_cache}; read it "
                "once online first"
            )
        commit = _check_commit(dataset, revision, ref.read_text(encoding="utf-8").strip())
        return HubSnapshot(repo_cache / "snapshots" / commit, revision, commit)
    from huggingface_hub import RepoFile

    api = _api(access)
    try:
        if commit is None:
            commit = api.dataset_info(dataset.repo_id, revision=revision).sha
        commit = _check_commit(dataset, revision, commit)
        tree = {
            item.path: int(item.size)
            for item in api.list_repo_tree(dataset.repo_id, recursive=True, revision=commit, repo_type="dataset")
            if isinstance(item, RepoFile)
        }
    except HubSourceError:
        raise
    except Exception as error:
        raise _hub_error(dataset, revision, error, access) from error
    wanted, patterns = _release_files(dataset, revision, commit, tree, max_bytes)
    folder = repo_cache / "snapshots" / commit
    if not _ref_file(repo_cache, commit).is_file():
        _download(dataset, revision, commit, patterns, repo_cache, access)
        staging = repo_cache / "downloads" / commit
        try:
            _check_download(f"{where} ({commit[:12]})", staging, wanted, max_bytes)
        except HubSourceError:
            shutil.rmtree(staging, ignore_errors=True)  # not resumable: the Hub sent something else than it listed
            raise
        if folder.exists():  # an incomplete snapshot of an earlier layout or run: never referenced
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, folder)
    for name in {commit, revision}:  # written last: a ref means a complete snapshot
        ref = _ref_file(repo_cache, name)
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit, encoding="utf-8")
    return HubSnapshot(folder, revision, commit)


def _download(dataset: HubDataset, revision: str, commit: str, patterns: list[str], repo_cache: Path, access: HubAccess):
    """The files of `commit` matching `patterns` into ``downloads/<commit>`` (kept on failure: the next attempt
    resumes)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(
            dataset.repo_id, repo_type="dataset", revision=commit, local_dir=repo_cache / "downloads" / commit,
            allow_patterns=patterns, endpoint=access.endpoint, token=access.token or None, max_workers=4,
        )
    except Exception as error:
        raise _hub_error(dataset, revision, error, access) from error
