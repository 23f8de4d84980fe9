"""Fetching a worksheet content release, whatever it is and wherever it lives (`release_series` says what a source
names and which releases it publishes; `content_formats` reads a release's files)."""

from __future__ import annotations

import hashlib
import http.client
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.releases import ReleaseSourceError, read_release, redact_url
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
from edugraph_pipeline.worksheets.imagefolder import AUTO
from edugraph_pipeline.worksheets.release_series import (
    ARCHIVE_SUFFIXES,
    SAMPLE,
    SourceKind,
    git_remote,
    list_folder_releases,
    list_git_releases,
    source_kind,
)
from edugraph_pipeline.worksheets.sample_generator import GENERATOR_VERSION, generate_problems, problem_items
from edugraph_pipeline.worksheets.unsupported import unsupported_items


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
    label_field: str = AUTO,
) -> ContentRelease:
    """The usable items of the content release `source` names (for folders of releases and git remotes: the
    release `release`, default the newest). Temporary files stay under `work_dir`. `label_field`: the ImageFolder
    rows' label field (`labels`, `tags`, or `auto`: whatever the release's rows use)."""
    kind = source_kind(source)
    source = source.strip()
    if kind is SourceKind.SAMPLE:
        return sample_release(ontology, sample_count, sample_seed)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if kind is SourceKind.URL:
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            archive_file = download(source, Path(scratch) / "release.tar.gz", limits.max_download_bytes)
            return read_archive(archive_file, Path(scratch) / "extracted", redact_url(source), limits, label_field)
    if kind is SourceKind.GIT:
        return read_git_release(source, work_dir, release, cache_dir or work_dir / "git-cache", limits, label_field)
    if kind is SourceKind.HUB:
        return read_hub_release(source, cache_dir or work_dir / "hub-cache", release, limits, label_field)
    path = Path(source).expanduser()
    if kind is SourceKind.ARCHIVE:
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            return read_archive(path, Path(scratch), str(path), limits, label_field)
    if has_release_files(path) and release is None:
        return read_folder(path, str(path), folder_version(path), limits, label_field)
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
        return read_archive(path / name, Path(scratch), str(path / name), limits, label_field)


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


def read_archive(
    archive_file: Path, scratch: Path, shown: str, limits: ContentLimits, label_field: str = AUTO
) -> ContentRelease:
    try:
        report = archives.safe_extract(
            archive_file, scratch, max_total_bytes=limits.max_archive_bytes, max_members=limits.max_archive_members
        )
    except archives.ArchiveRejected as error:
        raise ContentSourceError(f"{shown}: {error}") from error
    release = read_folder(scratch, shown, file_sha256(archive_file), limits, label_field)
    for name, reason in report.skipped:
        release.skipped.skip(f"{shown}!{name}", "unsafe archive member", reason)
    return release


def read_git_release(
    source: str, work_dir: Path, release: str | None, cache_dir: Path, limits: ContentLimits, label_field: str = AUTO
) -> ContentRelease:
    remote = git_remote(source)
    try:
        tag = release or (list_git_releases(source) or [None])[-1]
        if tag is None:
            raise ContentSourceError(f"{redact_url(remote)}: has no vX.Y.Z or vX.Y.Z-NN release tags")
        snapshot = read_release(remote, tag, cache_dir, select=lambda path: True, content=True)
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
        content = read_folder(root, f"{redact_url(remote)}@{tag}", f"{tag}@{snapshot.commit}", limits, label_field)
        content.revision = tag
        return content


def read_hub_release(
    source: str, cache_dir: Path, release: str | None, limits: ContentLimits, label_field: str = AUTO
) -> ContentRelease:
    """A Hub dataset release; its content version is the commit sha the revision resolved to."""
    try:
        snapshot = hub_source.download_release(source, cache_dir, release)
    except hub_source.HubSourceError as error:
        raise ContentSourceError(str(error)) from error
    shown = f"{hub_source.HF_DATASET_PREFIX}{hub_source.parse_source(source).repo_id}@{snapshot.revision}"
    content = read_folder(snapshot.folder, shown, snapshot.commit, limits, label_field)
    content.revision = snapshot.revision
    return content


