"""The two upstream formats of a worksheet content release, read from a folder that holds one.

- imagine-content: per module a `meta.json` list of `{questionImage, answerImage, labels: {Area, Scope, Ability}}`;
- Hugging Face ImageFolder: `train/` and `validation/` with `metadata.jsonl` rows `{file_name, labels|tags,
  solution}` (`imagefolder`: the label field, the row contract).

A non-math image is marked by the labels `{"Error": "UnsupportedMaterial"}` (meta.json) or the label
`UnsupportedMaterial` (metadata.jsonl). An ImageFolder release's own split (the `train/` or `validation/` folder a
metadata.jsonl lies in) is recorded per item in `ContentRelease.splits`, so the dataset can keep it. Broken entries
and images are logged with their file, line and split in `ContentRelease.skipped` and left out; whether that fails
the release is the ingestion contract's decision (`contract`), not the reader's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from edugraph_pipeline.worksheets.content_release import ContentLimits, ContentRelease, ContentSourceError
from edugraph_pipeline.worksheets.imagefolder import (
    AUTO,
    METADATA_FILE,
    MetadataFile,
    imagefolder_entries,
    label_list,
    metadata_text,
    release_label_field,
)
from edugraph_pipeline.worksheets.images import ImageRejected, check_file_size, normalise_image
from edugraph_pipeline.worksheets.items import (
    UNSUPPORTED_TAG,
    VIEW_QUESTION,
    VIEW_SOLUTION,
    VIEW_UNSUPPORTED,
    Origin,
    ReleaseEntry,
    SkipLog,
    WorksheetItem,
)

IMAGINE_META_FILE = "meta.json"
IMAGEFOLDER_METADATA_FILE = METADATA_FILE


def has_release_files(folder: Path) -> bool:
    """Whether `folder` holds a release of either format (rather than, say, a folder of release archives)."""
    return any(folder.rglob(IMAGINE_META_FILE)) or any(folder.rglob(IMAGEFOLDER_METADATA_FILE))


def read_folder(
    root: Path, shown: str, version: str, limits: ContentLimits = ContentLimits(), label_field: str = AUTO
) -> ContentRelease:
    """Every item of both upstream formats found under `root`; broken items are logged and left out.
    `label_field`: the ImageFolder rows' label field, `labels`, `tags` or `auto` (see `imagefolder`)."""
    root = Path(root)
    meta_files = sorted(root.rglob(IMAGINE_META_FILE))
    metadata_files = sorted(root.rglob(IMAGEFOLDER_METADATA_FILE))
    formats = [name for name, files in (("imagine-content", meta_files), ("imagefolder", metadata_files)) if files]
    release = ContentRelease(source=shown, version=version, format="+".join(formats) or "unknown")
    if not formats:
        raise ContentSourceError(f"{shown}: no meta.json (imagine-content) or metadata.jsonl (ImageFolder) found")
    for meta in meta_files:
        _add_items(release, root, _imagine_entries(meta, root, release.skipped), limits)
    parsed = [MetadataFile(path, root, release.skipped) for path in metadata_files]
    try:
        release.label_field = release_label_field(parsed, label_field)
    except ValueError as error:
        raise ContentSourceError(f"{shown}: {error}") from error
    for metadata in parsed:
        _add_items(release, root, imagefolder_entries(metadata, release.label_field, release.skipped), limits)
    return release


def _add_items(release: ContentRelease, root: Path, entries: Iterator[ReleaseEntry], limits: ContentLimits) -> None:
    for entry in entries:
        relative = entry.image.relative_to(root).as_posix() if entry.image.is_relative_to(root) else str(entry.image)
        if not entry.image.resolve().is_relative_to(root.resolve()):
            release.skipped.skip(entry.origin, "image path outside the release", relative)
            continue
        if not entry.image.is_file():
            release.skipped.skip(entry.origin, "missing image", f"{relative} does not exist")
            continue
        try:
            check_file_size(entry.image.stat().st_size, relative)  # before reading it into memory
            image = normalise_image(entry.image.read_bytes(), relative, max_pixels=limits.max_image_pixels)
        except ImageRejected as error:
            release.skipped.skip(entry.origin, error.reason, error.detail)
            continue
        release.reencoded_images += image.reencoded
        item = WorksheetItem(image.data, entry.labels, entry.problem_id, entry.view, entry.kind,
                             f"{release.source}:{relative}", origin=entry.origin)
        release.items.append(item)
        if entry.origin.split:
            release.splits[item.source] = entry.origin.split


def _load_json(path: Path, root: Path, skipped: SkipLog):
    shown = path.relative_to(root).as_posix()
    try:
        return json.loads(metadata_text(path))
    except json.JSONDecodeError as error:
        skipped.skip(Origin(shown, error.lineno), "malformed meta.json",
                     f"{shown} line {error.lineno} column {error.colno}: {error.msg}")
    except (OSError, UnicodeDecodeError) as error:
        skipped.skip(shown, "unreadable meta.json", f"{shown}: {error}")
    return None


def _imagine_entries(meta: Path, root: Path, skipped: SkipLog) -> Iterator[ReleaseEntry]:
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
                flat = tuple(label for key in sorted(labels) for label in label_list(labels[key], f"labels.{key}"))
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
            yield ReleaseEntry(Origin(f"{where}.{field_name}"), meta.parent / name, flat, problem_id, view, module)
