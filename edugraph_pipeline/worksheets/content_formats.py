"""The two upstream formats of a worksheet content release, read from a folder that holds one.

- imagine-content: per module a `meta.json` list of `{questionImage, answerImage, labels: {Area, Scope, Ability}}`;
- Hugging Face ImageFolder: `train/` and `validation/` with `metadata.jsonl` rows `{file_name, tags, solution}`.

A non-math image is marked by the labels `{"Error": "UnsupportedMaterial"}` (meta.json) or the tag
`UnsupportedMaterial` (metadata.jsonl). An ImageFolder release's own split (the `train/` or `validation/` folder a
metadata.jsonl lies in) is recorded per item in `ContentRelease.splits`, so the dataset can keep it; a file name
identifies a problem only within its split folder (upstream reuses names across splits for different exercises),
so the split folder is part of the problem id. Broken entries and images are skipped and logged, never fatal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edugraph_pipeline.worksheets.content_release import ContentLimits, ContentRelease, ContentSourceError
from edugraph_pipeline.worksheets.images import ImageRejected, check_file_size, normalise_image
from edugraph_pipeline.worksheets.items import (
    UNSUPPORTED_TAG,
    VIEW_QUESTION,
    VIEW_SOLUTION,
    VIEW_UNSUPPORTED,
    SkipLog,
    WorksheetItem,
)

IMAGINE_META_FILE = "meta.json"
IMAGEFOLDER_METADATA_FILE = "metadata.jsonl"
MAX_METADATA_BYTES = 64 * 1024**2  # a meta.json / metadata.jsonl; upstream's are well below 1 MiB
RELEASE_SPLITS = ("train", "validation")  # ImageFolder split folders whose assignment a dataset can keep
_SOLUTION_SUFFIX = re.compile(r"[_.-](mode-[qs]|question|solution|answer|q|s)$", re.IGNORECASE)


def has_release_files(folder: Path) -> bool:
    """Whether `folder` holds a release of either format (rather than, say, a folder of release archives)."""
    return any(folder.rglob(IMAGINE_META_FILE)) or any(folder.rglob(IMAGEFOLDER_METADATA_FILE))


def read_folder(root: Path, shown: str, version: str, limits: ContentLimits = ContentLimits()) -> ContentRelease:
    """Every item of both upstream formats found under `root`; broken items are skipped and logged."""
    root = Path(root)
    meta_files = sorted(root.rglob(IMAGINE_META_FILE))
    metadata_files = sorted(root.rglob(IMAGEFOLDER_METADATA_FILE))
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
