"""The unit everything in this package passes around: one labelled worksheet image, where it came from in its
release, and the log of what was left out (or found wrong) and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

VIEW_QUESTION = "question"
VIEW_SOLUTION = "solution"
VIEW_UNSUPPORTED = "unsupported"
VIEWS = (VIEW_QUESTION, VIEW_SOLUTION, VIEW_UNSUPPORTED)
# How a content release marks a non-math image (a `meta.json` label object or a metadata.jsonl tag).
UNSUPPORTED_TAG = "UnsupportedMaterial"


@dataclass(frozen=True)
class Origin:
    """Where an item or a problem sits in its release: the metadata file (relative to the release root, or an
    entry of it), the line where the file has lines, and the release's own split where its layout names one."""

    file: str
    line: int | None = None
    split: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


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
    # The metadata row it was read from (file, line, split); None for generated items.
    origin: Origin | None = field(default=None, compare=False)

    @property
    def unsupported(self) -> bool:
        return self.view == VIEW_UNSUPPORTED

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"item {self.problem_id}: view {self.view!r} is not one of {VIEWS}")


@dataclass(frozen=True)
class ReleaseEntry:
    """One entry of a release's metadata before its image is read: the image it names and its raw labels."""

    origin: Origin
    image: Path
    labels: tuple[str, ...]
    problem_id: str
    view: str
    kind: str


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a release: `reason` is a short, stable phrase (so it can be counted), `detail` says
    what exactly was wrong, `where` names the file (and line) or item; split, file and line where known."""

    where: str
    reason: str
    detail: str = ""
    split: str | None = None
    file: str | None = None
    line: int | None = None

    @classmethod
    def at(cls, where: str | Origin, reason: str, detail: str = "") -> Problem:
        if isinstance(where, Origin):
            return cls(str(where), reason, detail, where.split, where.file, where.line)
        return cls(where, reason, detail, file=where)

    def to_json(self) -> dict:
        return {"split": self.split, "file": self.file, "line": self.line, "reason": self.reason,
                "detail": self.detail}


@dataclass
class SkipLog:
    """Items left out and why (`Problem`s), in the order they were found."""

    problems: list[Problem] = field(default_factory=list)

    def skip(self, where: str | Origin, reason: str, detail: str = "") -> None:
        self.problems.append(Problem.at(where, reason, detail))

    @property
    def entries(self) -> list[tuple[str, str, str]]:
        """(where, reason, detail) of every skip."""
        return [(problem.where, problem.reason, problem.detail) for problem in self.problems]

    def extend(self, other: SkipLog) -> None:
        self.problems.extend(other.problems)

    def reasons(self) -> Counter:
        return Counter(problem.reason for problem in self.problems)

    def __len__(self) -> int:
        return len(self.problems)
