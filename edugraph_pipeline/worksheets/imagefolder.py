"""The ImageFolder format of a content release: `train/` and `validation/`, each a `metadata.jsonl` of rows
`{"file_name", "labels" | "tags", "solution"}` with the images under `<generator>/`.

The label field. Upstream's rows name their labels `labels` since v0.22.2-01 and `tags` before (its dataset card
still says `tags`); its own importer pins the field per experiment. Here it is decided per release: `labels`,
`tags`, or `auto` (the field every row of the release uses; where rows disagree, the field most rows use, and each
row using the other is malformed). A row is malformed, naming its file and line, when it has both fields or
neither, when its labels are no list, hold a non-string or repeat a value (labels are a set), when `file_name` is
no non-empty string or `solution` no boolean. A path named twice in one split's metadata is a problem of the
second row. What the caller does with a malformed row (skip it, or fail the release) is not decided here.

A file name identifies a problem only within its split folder (upstream reuses names across splits for different
exercises), so the split folder is part of the problem id.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from edugraph_pipeline.worksheets.items import (
    UNSUPPORTED_TAG,
    VIEW_QUESTION,
    VIEW_SOLUTION,
    VIEW_UNSUPPORTED,
    Origin,
    ReleaseEntry,
    SkipLog,
)

METADATA_FILE = "metadata.jsonl"
MAX_METADATA_BYTES = 64 * 1024**2  # a meta.json / metadata.jsonl; upstream's are well below 1 MiB
RELEASE_SPLITS = ("train", "validation")  # split folders whose assignment a dataset can keep
LABELS, TAGS, AUTO = "labels", "tags", "auto"
LABEL_FIELDS = (LABELS, TAGS)
LABEL_FIELD_CHOICES = (AUTO, LABELS, TAGS)
MALFORMED_ROW = "malformed metadata.jsonl row"
DUPLICATE_PATH = "path twice in a split"
_SOLUTION_SUFFIX = re.compile(r"[_.-](mode-[qs]|question|solution|answer|q|s)$", re.IGNORECASE)


def metadata_text(path: Path) -> str:
    """A metadata file's text; one beyond MAX_METADATA_BYTES is refused before it is read."""
    size = path.stat().st_size
    if size > MAX_METADATA_BYTES:
        raise OSError(f"{size} bytes, at most {MAX_METADATA_BYTES} for a metadata file")
    return path.read_text(encoding="utf-8")


def label_list(value, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(label, str) for label in value):
        raise ValueError(f"field {field_name!r} must be a list of concept names or IRIs, got {type(value).__name__}")
    return tuple(value)


def problem_id_from_file_name(file_name: str) -> str:
    """The problem a file shows: its path without extension and without a question/solution marker, so
    `m/x_inst-0_mode-Q.png` and `m/x_inst-0_mode-S.png` are the same problem."""
    path = PurePosixPath(file_name)
    return str(path.with_name(_SOLUTION_SUFFIX.sub("", path.stem)))


class MetadataFile:
    """One `metadata.jsonl`, parsed once: its lines as objects (or the JSON error), for both passes."""

    def __init__(self, path: Path, root: Path, skipped: SkipLog):
        self.path = path
        self.shown = path.relative_to(root).as_posix()
        self.split = path.parent.name if path.parent.name in RELEASE_SPLITS else None
        self.rows: list[tuple[int, object]] = []  # (line number, parsed row or the ValueError)
        try:
            lines = metadata_text(path).splitlines()
        except (OSError, UnicodeDecodeError) as error:
            skipped.skip(Origin(self.shown, split=self.split), "unreadable metadata.jsonl", f"{self.shown}: {error}")
            return
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    self.rows.append((number, json.loads(line)))
                except ValueError as error:  # json.JSONDecodeError is a ValueError
                    self.rows.append((number, error))


def release_label_field(files: list[MetadataFile], choice: str) -> str | None:
    """The label field of a release: `choice` when it names one, else (`auto`) the field the rows use; None when
    the release has no ImageFolder rows at all."""
    if choice not in LABEL_FIELD_CHOICES:
        raise ValueError(f"label field {choice!r}: expected one of {', '.join(LABEL_FIELD_CHOICES)}")
    if not any(file.rows for file in files):
        return None
    if choice != AUTO:
        return choice
    used = Counter(
        field for file in files for _, row in file.rows if isinstance(row, dict)
        for field in LABEL_FIELDS if field in row and not all(name in row for name in LABEL_FIELDS)
    )
    if not used:
        return LABELS  # no row names its labels: every row is reported as having neither field
    return max(LABEL_FIELDS, key=lambda field: (used[field], field == LABELS))


def _row_labels(row: dict, label_field: str) -> tuple[str, ...]:
    present = [name for name in LABEL_FIELDS if name in row]
    if len(present) == len(LABEL_FIELDS):
        raise ValueError(f"has both {LABELS!r} and {TAGS!r}; a row names its labels in exactly one field")
    if not present:
        raise ValueError(f"has no {label_field!r} field (the label field of this release)")
    if present[0] != label_field:
        raise ValueError(f"uses {present[0]!r} where this release's rows use {label_field!r}")
    labels = label_list(row[label_field], label_field)
    repeated = sorted(name for name, count in Counter(labels).items() if count > 1)
    if repeated:
        raise ValueError(f"field {label_field!r} repeats {', '.join(map(repr, repeated))}; labels are a set")
    return labels


def imagefolder_entries(file: MetadataFile, label_field: str, skipped: SkipLog) -> Iterator[ReleaseEntry]:
    """The well-formed rows of one metadata file as entries; every other row is logged in `skipped`."""
    first_line: dict[str, int] = {}
    for number, row in file.rows:
        origin = Origin(file.shown, number, file.split)
        try:
            if isinstance(row, ValueError):
                raise row
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            file_name = row.get("file_name")
            if not isinstance(file_name, str) or not file_name:
                raise ValueError("field 'file_name' is missing or not a string")
            labels = _row_labels(row, label_field)
            solution = row.get("solution", False)
            if not isinstance(solution, bool):
                raise ValueError(f"field 'solution' must be true or false, got {solution!r}")
        except ValueError as error:
            skipped.skip(origin, MALFORMED_ROW, f"{origin}: {error}")
            continue
        if file_name in first_line:
            skipped.skip(origin, DUPLICATE_PATH,
                         f"{origin}: {file_name} is named again (first on line {first_line[file_name]})")
            continue
        first_line[file_name] = number
        unsupported = labels == (UNSUPPORTED_TAG,)
        view = VIEW_UNSUPPORTED if unsupported else VIEW_SOLUTION if solution else VIEW_QUESTION
        problem_id = str(row.get("problem_id") or problem_id_from_file_name(file_name))
        if file.split and "problem_id" not in row:
            problem_id = f"{file.split}/{problem_id}"
        parts = PurePosixPath(file_name).parts
        kind = parts[0] if len(parts) > 1 else "content"
        yield ReleaseEntry(origin, file.path.parent / file_name, labels, problem_id, view, kind)
