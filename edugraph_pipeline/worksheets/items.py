"""The unit everything in this package passes around: one labelled worksheet image."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

VIEW_QUESTION = "question"
VIEW_SOLUTION = "solution"
VIEW_UNSUPPORTED = "unsupported"
VIEWS = (VIEW_QUESTION, VIEW_SOLUTION, VIEW_UNSUPPORTED)
# How a content release marks a non-math image (a `meta.json` label object or a metadata.jsonl tag).
UNSUPPORTED_TAG = "UnsupportedMaterial"


@dataclass(frozen=True)
class WorksheetItem:
    """One image and its raw labels, before the labels are read against an ontology release.

    `image` holds encoded, already validated image bytes (PNG or JPEG, RGB), so that the dataset stores exactly
    what was checked. `labels` are names or IRIs of any release's namespace; their dimension is decided by the
    bound ontology, never by the source.
    """

    image: bytes
    labels: tuple[str, ...]
    problem_id: str
    view: str
    kind: str
    source: str
    # What the generator drew (numbers, times, lengths): lets tests compare labels with the picture.
    facts: dict = field(default_factory=dict, compare=False)

    @property
    def unsupported(self) -> bool:
        return self.view == VIEW_UNSUPPORTED

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"item {self.problem_id}: view {self.view!r} is not one of {VIEWS}")


@dataclass
class SkipLog:
    """Items left out and why: `reason` is a short, stable phrase (so it can be counted), `detail` says what
    exactly was wrong, and `where` names the file (and line) or item."""

    entries: list[tuple[str, str, str]] = field(default_factory=list)

    def skip(self, where: str, reason: str, detail: str = "") -> None:
        self.entries.append((where, reason, detail))

    def extend(self, other: SkipLog) -> None:
        self.entries.extend(other.entries)

    def reasons(self) -> Counter:
        return Counter(reason for _, reason, _ in self.entries)

    def __len__(self) -> int:
        return len(self.entries)
