"""Reading a worksheet content release, whatever it is and wherever it lives.

`EDUGRAPH_CONTENT_SOURCE` is one of:
- `sample`: the offline generator (`sample_generator`, `unsupported`);
- a local folder holding a release (either upstream format, see below), or a folder of `*.tar.gz` releases;
- a local `.tar.gz` release archive, or an `http(s)://` URL of one (downloaded with a size cap);
- a git remote whose `vX.Y.Z` tags are content releases (`git+<url>`, or any remote ending in `.git`);
- a Hugging Face Hub dataset repository, `hf://datasets/<namespace>/<name>[@<revision>]` (`hub_source`).

Both upstream formats are read:
- imagine-content: per module a `meta.json` list of `{questionImage, answerImage, labels: {Area, Scope, Ability}}`;
- Hugging Face ImageFolder: `train/` and `validation/` with `metadata.jsonl` rows `{file_name, tags, solution}`.
A non-math image is marked by the labels `{"Error": "UnsupportedMaterial"}` (meta.json) or the tag
`UnsupportedMaterial` (metadata.jsonl). An ImageFolder release's own split (the `train/` or `validation/` folder a
metadata.jsonl lies in) is recorded per item in `ContentRelease.splits`, so the dataset can keep it; a file name
identifies a problem only within its split folder (upstream reuses names across splits for different exercises),
so the split folder is part of the problem id.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from edugraph_pipeline.worksheets.images import MAX_IMAGE_PIXELS, ImageRejected, check_file_size, normalise_image
from edugraph_pipeline.worksheets.items import (
    UNSUPPORTED_TAG,
    VIEW_QUESTION,
    VIEW_SOLUTION,
    VIEW_UNSUPPORTED,
    SkipLog,
    WorksheetItem,
)
from edugraph_pipeline.worksheets.sample_generator import GENERATOR_VERSION, generate_problems, problem_items
from edugraph_pipeline.worksheets.unsupported import unsupported_items

SAMPLE = "sample"
MAX_DOWNLOAD_BYTES = 2 * 1024**3
MAX_METADATA_BYTES = 64 * 1024**2  # a meta.json / metadata.jsonl; upstream's are well below 1 MiB
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
RELEASE_SPLITS = ("train", "validation")  # ImageFolder split folders whose assignment a dataset can keep
_SOLUTION_SUFFIX = re.compile(r"[_.-](mode-[qs]|question|solution|answer|q|s)$", re.IGNORECASE)


class ContentSourceError(RuntimeError):
    """The content source cannot be read or holds no usable item; the message names the source."""


@dataclass(frozen=True)
class ContentLimits:
    max_download_bytes: int = MAX_DOWNLOAD_BYTES
    max_archive_bytes: int = archives.MAX_TOTAL_BYTES
    max_archive_members: int = archives.MAX_MEMBERS
    max_image_pixels: int = MAX_IMAGE_PIXELS


@dataclass
class ContentRelease:
    source: str  # where it came from, safe to log (no credentials)
    version: str  # identifies the exact content: a sha256, or tag@commit for git releases
    format: str
    items: list[WorksheetItem] = field(default_factory=list)
    skipped: SkipLog = field(default_factory=SkipLog)
    reencoded_images: int = 0
    revision: str | None = None  # the tag (or branch) the release was asked for, when it has one
    splits: dict[str, str] = field(default_factory=dict)  # item source -> the release's own split of it


# --- where the release comes from -------------------------------------------------------------------------


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def is_git_source(source: str) -> bool:
    return source.startswith("git+") or source.rstrip("/").endswith(".git")


def git_remote(source: str) -> str:
    return source.removeprefix("git+")


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


def _has_release_files(folder: Path) -> bool:
    return any(folder.rglob("meta.json")) or any(folder.rglob("metadata.jsonl"))


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
    source = source.strip()
    if source == SAMPLE:
        return sample_release(ontology, sample_count, sample_seed)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    if source.lower().startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            archive_file = download(source, Path(scratch) / "release.tar.gz", limits.max_download_bytes)
            return read_archive(archive_file, Path(scratch) / "extracted", redact_url(source), limits)
    if is_git_source(source):
        return read_git_release(source, work_dir, release, cache_dir or work_dir / "git-cache", limits)
    if hub_source.is_hub_source(source):
        return read_hub_release(source, cache_dir or work_dir / "hub-cache", release, limits)
    path = Path(source).expanduser()
    if path.is_file() and is_archive(path.name):
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            return read_archive(path, Path(scratch), str(path), limits)
    if path.is_dir():
        if _has_release_files(path) and release is None:
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
    raise ContentSourceError(
        f"content source {source!r} is neither 'sample', an existing folder or .tar.gz file, an http(s) URL, "
        "a git remote (git+<url> or ending in .git), nor hf://datasets/<namespace>/<name>[@<revision>]"
    )


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


# --- what the release holds -------------------------------------------------------------------------------


def read_folder(root: Path, shown: str, version: str, limits: ContentLimits = ContentLimits()) -> ContentRelease:
    """Every item of both upstream formats found under `root`; broken items are skipped and logged."""
    root = Path(root)
    meta_files = sorted(root.rglob("meta.json"))
    metadata_files = sorted(root.rglob("metadata.jsonl"))
    formats = [name for name, files in (("imagine-content", meta_files), ("imagefolder", metadata_files)) if files]
    release = ContentRelease(source=shown, version=version, format="+".join(formats) or "unknown")
    if not formats:
        raise ContentSourceError(f"{shown}: no meta.json (imagine-content) or metadata.jsonl (ImageFolder) found")
    for meta in meta_files:
        _add_items(release, root, _imagine_entries(meta, root, release.skipped), limits)
    for metadata in metadata_files:
        _add_items(release, root, _imagefolder_rows(metadata, root, release.skipped), limits)
    return release


@dataclass(frozen=True)
class _Entry:
    where: str  # file and line or entry index, for messages
    image: Path
    labels: tuple[str, ...]
    problem_id: str
    view: str
    kind: str
    split: str | None = None  # the release's own split, when its layout names one


def _add_items(release: ContentRelease, root: Path, entries: Iterator[_Entry], limits: ContentLimits) -> None:
    for entry in entries:
        relative = entry.image.relative_to(root).as_posix() if entry.image.is_relative_to(root) else str(entry.image)
        if not entry.image.resolve().is_relative_to(root.resolve()):
            release.skipped.skip(entry.where, "image path outside the release", relative)
            continue
        if not entry.image.is_file():
            release.skipped.skip(entry.where, "missing image", f"{relative} does not exist")
            continue
        try:
            check_file_size(entry.image.stat().st_size, relative)  # before reading it into memory
            image = normalise_image(entry.image.read_bytes(), relative, max_pixels=limits.max_image_pixels)
        except ImageRejected as error:
            release.skipped.skip(entry.where, error.reason, error.detail)
            continue
        release.reencoded_images += image.reencoded
        item = WorksheetItem(image.data, entry.labels, entry.problem_id, entry.view, entry.kind,
                             f"{release.source}:{relative}")
        release.items.append(item)
        if entry.split:
            release.splits[item.source] = entry.split


def _metadata_text(path: Path) -> str:
    """A metadata file's text; one beyond MAX_METADATA_BYTES is refused before it is read."""
    size = path.stat().st_size
    if size > MAX_METADATA_BYTES:
        raise OSError(f"{size} bytes, at most {MAX_METADATA_BYTES} for a metadata file")
    return path.read_text(encoding="utf-8")


def _load_json(path: Path, root: Path, skipped: SkipLog):
    shown = path.relative_to(root).as_posix()
    try:
        return json.loads(_metadata_text(path))
    except json.JSONDecodeError as error:
        skipped.skip(f"{shown}:{error.lineno}", "malformed meta.json",
                     f"{shown} line {error.lineno} column {error.colno}: {error.msg}")
    except (OSError, UnicodeDecodeError) as error:
        skipped.skip(shown, "unreadable meta.json", f"{shown}: {error}")
    return None


def _label_list(value, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(label, str) for label in value):
        raise ValueError(f"field {field_name!r} must be a list of concept names or IRIs, got {type(value).__name__}")
    return tuple(value)


def _imagine_entries(meta: Path, root: Path, skipped: SkipLog) -> Iterator[_Entry]:
    shown = meta.relative_to(root).as_posix()
    data = _load_json(meta, root, skipped)
    if data is None:
        return
    if not isinstance(data, list):
        skipped.skip(shown, "malformed meta.json", f"{shown}: expected a list of entries, got {type(data).__name__}")
        return
    module = meta.parent.relative_to(root).as_posix() or "content"
    for index, entry in enumerate(data):
        where = f"{shown}[{index}]"
        try:
            if not isinstance(entry, dict):
                raise ValueError(f"expected an object, got {type(entry).__name__}")
            labels = entry.get("labels")
            if labels == {"Error": UNSUPPORTED_TAG}:
                flat, views = (UNSUPPORTED_TAG,), [("questionImage", VIEW_UNSUPPORTED)]
            elif isinstance(labels, dict):
                flat = tuple(label for key in sorted(labels) for label in _label_list(labels[key], f"labels.{key}"))
                views = [("questionImage", VIEW_QUESTION), ("answerImage", VIEW_SOLUTION)]
            else:
                raise ValueError("field 'labels' must be an object {Area: [...], Scope: [...], Ability: [...]}")
            if not isinstance(entry.get("questionImage"), str) or not entry["questionImage"]:
                raise ValueError("field 'questionImage' must name an image file")
        except ValueError as error:
            skipped.skip(where, "malformed meta.json entry", f"{where}: {error}")
            continue
        problem_id = f"{module}/{entry.get('contentHash') or PurePosixPath(entry['questionImage']).stem}"
        for field_name, view in views:
            name = entry.get(field_name)
            if not name:
                continue  # an entry without answer image simply has no solution view
            if not isinstance(name, str):
                skipped.skip(where, "malformed meta.json entry", f"{where}: field {field_name!r} must be a string")
                continue
            yield _Entry(f"{where}.{field_name}", meta.parent / name, flat, problem_id, view, module)


def problem_id_from_file_name(file_name: str) -> str:
    """The problem a file shows: its path without extension and without a question/solution marker, so
    `m/x_inst-0_mode-Q.png` and `m/x_inst-0_mode-S.png` are the same problem."""
    path = PurePosixPath(file_name)
    return str(path.with_name(_SOLUTION_SUFFIX.sub("", path.stem)))


def _imagefolder_rows(metadata: Path, root: Path, skipped: SkipLog) -> Iterator[_Entry]:
    shown = metadata.relative_to(root).as_posix()
    split = metadata.parent.name if metadata.parent.name in RELEASE_SPLITS else None
    try:
        lines = _metadata_text(metadata).splitlines()
    except (OSError, UnicodeDecodeError) as error:
        skipped.skip(shown, "unreadable metadata.jsonl", f"{shown}: {error}")
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{shown}:{number}"
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            file_name = row.get("file_name")
            if not isinstance(file_name, str) or not file_name:
                raise ValueError("field 'file_name' is missing or not a string")
            tags = _label_list(row.get("tags"), "tags")
            solution = row.get("solution", False)
            if not isinstance(solution, bool):
                raise ValueError(f"field 'solution' must be true or false, got {solution!r}")
        except ValueError as error:  # json.JSONDecodeError is a ValueError
            skipped.skip(where, "malformed metadata.jsonl row", f"{where}: {error}")
            continue
        unsupported = tags == (UNSUPPORTED_TAG,)
        view = VIEW_UNSUPPORTED if unsupported else VIEW_SOLUTION if solution else VIEW_QUESTION
        problem_id = str(row.get("problem_id") or problem_id_from_file_name(file_name))
        if split and "problem_id" not in row:
            problem_id = f"{split}/{problem_id}"
        kind = PurePosixPath(file_name).parts[0] if len(PurePosixPath(file_name).parts) > 1 else "content"
        yield _Entry(where, metadata.parent / file_name, tags, problem_id, view, kind, split)

