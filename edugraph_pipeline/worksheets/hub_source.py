"""Content releases published as Hugging Face Hub dataset repositories: `hf://datasets/<namespace>/<name>[@<revision>]`.

Upstream's generator pushes every content release to a dataset repo (ImageFolder layout: `train/` and
`validation/`, each with `metadata.jsonl` and images under `<generator>/`) and tags it `vX.Y.Z`. A release is read
as one snapshot of one commit: the revision (tag, branch or sha; `main` when none is given) is resolved to its
commit sha first, and that sha is both what is downloaded and the content version, so a moved tag is a different
release. Only the metadata files and the images next to them are downloaded (no README, stats or provenance).

Snapshots are plain files under `<cache>/hf-datasets/<namespace>/<name>/snapshots/<sha>/` (huggingface_hub's
`local_dir` mode: interrupted downloads resume). `refs/<revision>` holds the sha and is written only once the
snapshot is complete, so offline mode (``HF_HUB_OFFLINE=1``) can use exactly the revisions fetched before and
fails naming the revision otherwise. ``HF_ENDPOINT`` and ``HF_TOKEN`` are read when a release is read (not at
import); the token is only ever handed to huggingface_hub, and error messages are scrubbed of it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from edugraph_pipeline.publishing.hub import resolve_endpoint, scrub
from edugraph_pipeline.releases import content_tag_key, is_content_tag

HF_DATASET_PREFIX = "hf://datasets/"
DEFAULT_REVISION = "main"
METADATA_FILE = "metadata.jsonl"
# The images a release may hold (content decides the format later; this only keeps other files off the wire).
IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff")
_SOURCE = re.compile(r"^hf://datasets/(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[^@\s]+))?$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


class HubSourceError(RuntimeError):
    """The Hub dataset cannot be read as a content release; the message names the repository and revision."""


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
    if tag and _SHA.match(commit):
        return tag, commit
    return release, None


def endpoint() -> str:
    return resolve_endpoint(None)  # HF_ENDPOINT now, not when huggingface_hub was imported


def offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint(), token=os.environ.get("HF_TOKEN") or None)


def _hub_error(dataset: HubDataset, revision: str, error: Exception) -> HubSourceError:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    where = f"{HF_DATASET_PREFIX}{dataset.repo_id}"
    if isinstance(error, RevisionNotFoundError):
        return HubSourceError(f"{where}: has no revision {revision!r} (no such tag, branch or commit)")
    if isinstance(error, RepositoryNotFoundError):
        return HubSourceError(f"{where}: dataset repository not found at {endpoint()} (private? set HF_TOKEN)")
    detail = scrub(f"{type(error).__name__}: {error}", os.environ.get("HF_TOKEN")).splitlines()[0]
    return HubSourceError(f"{where}@{revision}: cannot reach the Hub at {endpoint()}: {detail}")


def list_release_refs(source: str) -> list[tuple[str, str]]:
    """(tag, commit) of every content tag (vX.Y.Z, vX.Y.Z-NN) of the dataset repo, in release order (newest last)."""
    dataset = parse_source(source)
    try:
        refs = _api().list_repo_refs(dataset.repo_id, repo_type="dataset")
    except Exception as error:  # huggingface_hub raises HTTP, connection and offline errors alike
        raise _hub_error(dataset, "refs", error) from error
    tags = [(ref.name, ref.target_commit) for ref in refs.tags if is_content_tag(ref.name)]
    return sorted(tags, key=lambda pair: content_tag_key(pair[0]))


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


def download_release(source: str, cache_dir: Path, release: str | None = None) -> HubSnapshot:
    """The snapshot of the release `source` names (or `release`: a `release_id` or a revision), downloaded once."""
    dataset = parse_source(source)
    revision, commit = split_release_id(release) if release else (dataset.revision or DEFAULT_REVISION, None)
    repo_cache = _repo_cache(cache_dir, dataset.repo_id)
    if offline():
        ref = _ref_file(repo_cache, commit or revision)
        if not ref.is_file():
            raise HubSourceError(
                f"{HF_DATASET_PREFIX}{dataset.repo_id}@{revision}: offline mode (HF_HUB_OFFLINE) and this revision "
                f"is not in the cache {repo_cache}; read it once online first"
            )
        commit = ref.read_text(encoding="utf-8").strip()
        return HubSnapshot(repo_cache / "snapshots" / commit, revision, commit)
    api = _api()
    try:
        if commit is None:
            commit = api.dataset_info(dataset.repo_id, revision=revision).sha
        files = api.list_repo_files(dataset.repo_id, repo_type="dataset", revision=commit)
    except Exception as error:
        raise _hub_error(dataset, revision, error) from error
    if not commit:
        raise HubSourceError(f"{HF_DATASET_PREFIX}{dataset.repo_id}@{revision}: the Hub answered without a commit sha")
    patterns = release_patterns(files)
    if not patterns:
        raise HubSourceError(
            f"{HF_DATASET_PREFIX}{dataset.repo_id}@{revision} ({commit[:12]}): no {METADATA_FILE} in the repository "
            f"(a content release has train/{METADATA_FILE} and validation/{METADATA_FILE}, or one at its root)"
        )
    folder = repo_cache / "snapshots" / commit
    ref = _ref_file(repo_cache, commit)
    if not ref.is_file():
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(
                dataset.repo_id, repo_type="dataset", revision=commit, local_dir=folder, allow_patterns=patterns,
                endpoint=endpoint(), token=os.environ.get("HF_TOKEN") or None, max_workers=4,
            )
        except Exception as error:
            raise _hub_error(dataset, revision, error) from error
    for name in {commit, revision}:  # written last: a ref means a complete snapshot
        ref = _ref_file(repo_cache, name)
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit, encoding="utf-8")
    return HubSnapshot(folder, revision, commit)
