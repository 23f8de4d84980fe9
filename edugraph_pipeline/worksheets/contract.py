"""Upstream's ingestion contract for a content release, applied fail-closed: what fails a release, which sources are
held to it unless told otherwise, and the report of a release that fails it.

A release fails, as a whole and with every problem reported (split, file, line, reason), on: a path named twice in
one split, a missing (or unreadable) image, identical image bytes in train and validation, a malformed row (which
includes a row with both label fields or neither, a non-string or a repeated label), an unknown label, a label of no
dimension, and a label that is organizational (not eligible) under the bound ontology release.

Strict by default (`EDUGRAPH_CONTENT_STRICT` unset): published releases, i.e. a Hub dataset, a git remote's tags, a
release archive (path or URL) and a folder of release archives. Lenient by default: the sample generator and a
folder holding one release (a working copy), which keep the skip-and-count behaviour. `EDUGRAPH_CONTENT_STRICT`
`true` or `false` decides for every source (`false`: skip and count, recorded in the dataset's metadata).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.worksheets.content_formats import has_release_files
from edugraph_pipeline.worksheets.content_release import ContentRelease
from edugraph_pipeline.worksheets.dataset import KNOWN, label_status
from edugraph_pipeline.worksheets.items import Problem, WorksheetItem
from edugraph_pipeline.worksheets.release_series import SourceKind, source_kind

IDENTICAL_ACROSS_SPLITS = "identical image in train and validation"
STRICT_SOURCE_KINDS = (SourceKind.HUB, SourceKind.GIT, SourceKind.URL, SourceKind.ARCHIVE)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ReleaseRejected(ValueError):
    """A content release fails the ingestion contract; `problems` lists every problem found."""

    def __init__(self, shown: str, problems: list[Problem]):
        self.problems = problems
        counts = ", ".join(f"{count} {reason}" for reason, count in Counter(p.reason for p in problems).most_common())
        lines = "\n".join(f"- {describe(problem)}" for problem in problems[:20])
        more = f"\n- … {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"content release {shown} fails the ingestion contract, nothing was published: {len(problems)} "
            f"problem(s) ({counts})\n{lines}{more}"
        )


def parse_strict(value: str) -> bool | None:
    """`EDUGRAPH_CONTENT_STRICT` as given: True, False, or None (unset: the source kind decides)."""
    value = (value or "").strip().lower()
    if not value:
        return None
    if value not in _TRUE + _FALSE:
        raise ValueError(f"EDUGRAPH_CONTENT_STRICT={value!r}: expected true or false (or unset)")
    return value in _TRUE


def is_strict(source: str, strict: bool | None) -> bool:
    """Whether `source`'s release is held to the contract: `strict` when given, else by the kind of source."""
    if strict is not None:
        return strict
    kind = source_kind(source)
    if kind is SourceKind.FOLDER:
        return not has_release_files(Path(source.strip()).expanduser())  # a folder of release archives
    return kind in STRICT_SOURCE_KINDS


def describe(problem: Problem) -> str:
    split = f" [{problem.split}]" if problem.split else ""
    return f"{problem.where}{split}: {problem.reason}" + (f" ({problem.detail})" if problem.detail else "")


def _image_path(item: WorksheetItem) -> str:
    return item.source.rpartition(":")[2]


def cross_split_duplicates(items: Iterable[WorksheetItem]) -> list[Problem]:
    """Every validation image whose bytes are also a train image (upstream's validation shares no content)."""
    by_hash: dict[str, dict[str, list[WorksheetItem]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        if item.origin is not None and item.origin.split:
            by_hash[hashlib.sha256(item.image).hexdigest()][item.origin.split].append(item)
    problems = []
    for sides in by_hash.values():
        if len(sides) < 2:
            continue
        first_split = min(sides)  # "train" before "validation"
        other = sides[first_split][0]
        for split, found in sorted(sides.items()):
            if split == first_split:
                continue
            for item in found:
                problems.append(Problem.at(
                    item.origin, IDENTICAL_ACROSS_SPLITS,
                    f"{_image_path(item)} has the bytes of {_image_path(other)} ({other.origin})",
                ))
    return problems


def label_problems(items: Iterable[WorksheetItem], ontology: Ontology) -> list[Problem]:
    """One problem per item and label that the bound ontology release does not accept as a direct label."""
    problems = []
    for item in items:
        if item.unsupported:
            continue
        where = item.origin if item.origin is not None else item.source
        for label in item.labels:
            status = label_status(label, ontology)
            if status != KNOWN:
                problems.append(Problem.at(where, status, f"{label!r} under ontology {ontology.version}"))
    return problems


def contract_problems(release: ContentRelease, ontology: Ontology) -> list[Problem]:
    """Every problem of `release` under the contract, in the order found: what reading refused, then identical
    images across splits, then labels."""
    return [
        *release.skipped.problems,
        *cross_split_duplicates(release.items),
        *label_problems(release.items, ontology),
    ]


def enforce(release: ContentRelease, ontology: Ontology) -> None:
    """Raise `ReleaseRejected` with every problem when `release` breaks the contract."""
    problems = contract_problems(release, ontology)
    if problems:
        raise ReleaseRejected(f"{release.source} ({release.version})", problems)


def problem_table(problems: list[Problem], limit: int = 50) -> str:
    """The problems as a Markdown table (split, file, line, reason, detail)."""
    if not problems:
        return "No problem."
    rows = ["| Split | File | Line | Reason | Detail |", "| --- | --- | ---: | --- | --- |"]
    for p in problems[:limit]:
        detail = p.detail.replace("|", "/")
        rows.append(f"| {p.split or ''} | {p.file or p.where} | {p.line if p.line is not None else ''} | "
                    f"{p.reason} | {detail} |")
    if len(problems) > limit:
        rows.append(f"| … | {len(problems) - limit} more | | | |")
    return "\n".join(rows)
