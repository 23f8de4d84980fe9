"""Fetching a worksheet content release, whatever it is and wherever it lives; `content_formats` reads its files.

`EDUGRAPH_CONTENT_SOURCE` is one of (`source_kind` decides which, once, in this order):
- `sample`: the offline generator (`sample_generator`, `unsupported`);
- a Hugging Face Hub dataset repository, `hf://datasets/<namespace>/<name>[@<revision>]` (`hub_source`);
- a git remote whose `vX.Y.Z` tags are content releases (`git+<url>`, or any remote ending in `.git`);
- an `http(s)://` URL of a `.tar.gz` release archive (downloaded with a size cap);
- a local folder holding a release (either upstream format), or a folder of `*.tar.gz` releases;
- a local `.tar.gz` release archive.
"""

from __future__ import annotations

import enum
import hashlib
import http.client
import re
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.releases import (
    ReleaseSourceError,
    list_release_tags,
    read_release,
    redact_url,
    semver_key,
)
from edugraph_pipeline.storage import file_sha256
from edugraph_pipeline.worksheets import archive as archives
from edugraph_pipeline.worksheets import hub_source
from edugraph_pipeline.worksheets.content_formats import has_release_files, read_folder
from edugraph_pipeline.worksheets.content_release import (
    MAX_DOWNLOAD_BYTES,
    ContentLimits,
    ContentRelease,
    ContentSourceError,
)
from edugraph_pipeline.worksheets.sample_generator import GENERATOR_VERSION, generate_problems, problem_items
from edugraph_pipeline.worksheets.unsupported import unsupported_items

SAMPLE = "sample"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class SourceKind(enum.Enum):
    """What a content source names; `source_kind` decides it, everything else asks it."""

    SAMPLE = "sample"  # the offline generator
    HUB = "hub"  # a Hub dataset repository: one revision, or its vX.Y.Z tags
    GIT = "git"  # a git remote whose vX.Y.Z tags are releases
    URL = "url"  # an http(s) URL of one release archive
    ARCHIVE = "archive"  # a local release archive
    FOLDER = "folder"  # a local folder: one release, or a folder of release archives


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def is_git_source(source: str) -> bool:
    return source.startswith("git+") or source.rstrip("/").endswith(".git")


def git_remote(source: str) -> str:
    return source.removeprefix("git+")


def source_kind(source: str) -> SourceKind:
    """The kind of content source `source` names (surrounding whitespace ignored); fails for anything else."""
    source = source.strip()
    if source == SAMPLE:
        return SourceKind.SAMPLE
    if hub_source.is_hub_source(source):
        return SourceKind.HUB
    if is_git_source(source):
        return SourceKind.GIT
    if source.lower().startswith(("http://", "https://")):
        return SourceKind.URL
    path = Path(source).expanduser()
    if path.is_dir():
        return SourceKind.FOLDER
    if path.is_file() and is_archive(path.name):
        return SourceKind.ARCHIVE
    raise ContentSourceError(
        f"content source {source!r} is neither 'sample', an existing folder or .tar.gz file, an http(s) URL, "
        "a git remote (git+<url> or ending in .git), nor hf://datasets/<namespace>/<name>[@<revision>]"
    )


def folder_version(folder: Path) -> str:
    """sha256 of the sorted manifest `path<TAB>sha256-of-file` of every file: stable across copies and mtimes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(f"{path.relative_to(folder).as_posix()}\t{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def download(url: str, destination: Path, max_bytes: int = MAX_DOWNLOAD_BYTES, timeout: float = 60.0) -> Path:
    """Stream `url` to `destination`, refusing more than `max_bytes` whatever Content-Length claims."""
    shown = redact_url(url)
    if not url.lower().startswith(("https://", "http://")):
        raise ContentSourceError(f"{shown}: only http(s) URLs can be downloaded")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ContentSourceError(f"{shown}: {declared} bytes announced, at most {max_bytes} allowed")
            written = 0
            with open(destination, "wb") as handle:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    written += len(chunk)
                    if written > max_bytes:
                        raise ContentSourceError(f"{shown}: more than {max_bytes} bytes; download stopped")
                    handle.write(chunk)
            if declared and declared.isdigit() and written != int(declared):
                raise ContentSourceError(f"{shown}: {written} of {declared} announced bytes received; download truncated")
    except ContentSourceError:
        destination.unlink(missing_ok=True)
        raise
    except (OSError, ValueError, http.client.HTTPException) as error:  # IncompleteRead: the body ended early
        destination.unlink(missing_ok=True)
        raise ContentSourceError(f"cannot download {shown}: {type(error).__name__}: {error}") from error
    return destination


def list_folder_releases(folder: Path) -> list[str]:
    """Release archives in a folder of releases, newest last (semver names first in semver order, then by name)."""

    def order(name: str):
        stem = re.sub(r"(\.tar\.gz|\.tgz|\.tar)$", "", name)
        match = re.search(r"v\d+\.\d+\.\d+", stem)
        return (1, semver_key(match.group()), name) if match else (0, (0, 0, 0), name)

    return sorted((p.name for p in folder.iterdir() if p.is_file() and is_archive(p.name)), key=order)


def list_git_releases(source: str) -> list[str]:
    return [tag.name for tag in list_release_tags(git_remote(source))]


def list_releases(source: str) -> list[str]:
    """The releases `source` publishes, newest last: git tags, archive names in a folder of releases, or
    `tag@commit` of a Hub dataset's tags (so a moved tag is a new release); [] for a source of one release."""
    kind = source_kind(source)
    source = source.strip()
    if kind is SourceKind.GIT:
        return list_git_releases(source)
    if kind is SourceKind.HUB:
        try:
            if hub_source.parse_source(source).revision is not None:
                return []
            return [hub_source.release_id(tag, commit) for tag, commit in hub_source.list_release_refs(source)]
        except hub_source.HubSourceError as error:
            raise ContentSourceError(str(error)) from error
    if kind is SourceKind.FOLDER:
        return list_folder_releases(Path(source).expanduser())
    return []


def read_content(
    source: str,
    work_dir: Path,
    ontology: Ontology,
    *,
    release: str | None = None,
    sample_count: int = 200,
    sample_seed: int = 0,
    limits: ContentLimits = ContentLimits(),
    cache_dir: Path | None = None,
) -> ContentRelease:
    """The usable items of the content release `source` names (for folders of releases and git remotes: the
    release `release`, default the newest). Temporary files stay under `work_dir`."""
    kind = source_kind(source)
    source = source.strip()
    if kind is SourceKind.SAMPLE:
        return sample_release(ontology, sample_count, sample_seed)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if kind is SourceKind.URL:
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            archive_file = download(source, Path(scratch) / "release.tar.gz", limits.max_download_bytes)
            return read_archive(archive_file, Path(scratch) / "extracted", redact_url(source), limits)
    if kind is SourceKind.GIT:
        return read_git_release(source, work_dir, release, cache_dir or work_dir / "git-cache", limits)
    if kind is SourceKind.HUB:
        return read_hub_release(source, cache_dir or work_dir / "hub-cache", release, limits)
    path = Path(source).expanduser()
    if kind is SourceKind.ARCHIVE:
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            return read_archive(path, Path(scratch), str(path), limits)
    if has_release_files(path) and release is None:
        return read_folder(path, str(path), folder_version(path), limits)
    names = list_folder_releases(path)
    if not names:
        raise ContentSourceError(
            f"{path}: neither a content release (no meta.json or metadata.jsonl) nor a folder of "
            f"{'/'.join(ARCHIVE_SUFFIXES)} releases"
        )
    name = release or names[-1]
    if name not in names:
        raise ContentSourceError(f"{path}: has no release {name!r} (newest: {', '.join(names[-3:])})")
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        return read_archive(path / name, Path(scratch), str(path / name), limits)


def sample_release(ontology: Ontology, count: int, seed: int, unsupported_share: float = 0.1) -> ContentRelease:
    """`count` generated images: worksheets in question/solution pairs plus some non-math pictures."""
    unsupported = max(1, round(count * unsupported_share)) if count > 2 else 0
    problems = (count - unsupported) // 2
    unsupported = count - 2 * problems
    release = ContentRelease(
        source=SAMPLE,
        version=f"sample-g{GENERATOR_VERSION}-seed{seed}-n{count}-{ontology.version}",
        format="sample",
    )
    for problem in generate_problems(ontology, problems, seed=seed):
        release.items.extend(problem_items(problem))
    release.items.extend(unsupported_items(unsupported, seed=seed))
    return release


def read_archive(archive_file: Path, scratch: Path, shown: str, limits: ContentLimits) -> ContentRelease:
    try:
        report = archives.safe_extract(
            archive_file, scratch, max_total_bytes=limits.max_archive_bytes, max_members=limits.max_archive_members
        )
    except archives.ArchiveRejected as error:
        raise ContentSourceError(f"{shown}: {error}") from error
    release = read_folder(scratch, shown, file_sha256(archive_file), limits)
    for name, reason in report.skipped:
        release.skipped.skip(f"{shown}!{name}", "unsafe archive member", reason)
    return release


def read_git_release(
    source: str, work_dir: Path, release: str | None, cache_dir: Path, limits: ContentLimits
) -> ContentRelease:
    remote = git_remote(source)
    try:
        tag = release or (list_git_releases(source) or [None])[-1]
        if tag is None:
            raise ContentSourceError(f"{redact_url(remote)}: has no vX.Y.Z release tags")
        snapshot = read_release(remote, tag, cache_dir, select=lambda path: True)
    except ReleaseSourceError as error:
        raise ContentSourceError(str(error)) from error
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        root = Path(scratch)
        for name, data in snapshot.files.items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts:
                continue  # git trees cannot hold such paths; refuse them anyway
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        content = read_folder(root, f"{redact_url(remote)}@{tag}", f"{tag}@{snapshot.commit}", limits)
        content.revision = tag
        return content


def read_hub_release(source: str, cache_dir: Path, release: str | None, limits: ContentLimits) -> ContentRelease:
    """A Hub dataset release; its content version is the commit sha the revision resolved to."""
    try:
        snapshot = hub_source.download_release(source, cache_dir, release)
    except hub_source.HubSourceError as error:
        raise ContentSourceError(str(error)) from error
    shown = f"{hub_source.HF_DATASET_PREFIX}{hub_source.parse_source(source).repo_id}@{snapshot.revision}"
    content = read_folder(snapshot.folder, shown, snapshot.commit, limits)
    content.revision = snapshot.revision
    return content


