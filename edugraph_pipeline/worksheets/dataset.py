"""From worksheet items and one ontology release to the Hugging Face dataset the labeller is trained on.

The contract with training (`DatasetDict` with splits `train` and `validation`):
`image` (datasets.Image), `labels` (the exact answer string: `format_answer(...)` or `format_unsupported()`),
`problem_id`, `view` (question/solution/unsupported), `kind`, `source`, `image_sha256` (all strings).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import datasets

from edugraph_pipeline.labels import format_answer, format_unsupported
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology, concept_name
from edugraph_pipeline.worksheets.items import UNSUPPORTED_TAG, SkipLog, WorksheetItem

SPLITS = ("train", "validation")
COLUMNS = ("image", "labels", "problem_id", "view", "kind", "source", "image_sha256")
FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        **{column: datasets.Value("string") for column in COLUMNS if column != "image"},
    }
)


@dataclass(frozen=True)
class LabelledRow:
    item: WorksheetItem
    answer: str
    image_sha256: str


@dataclass
class DatasetSummary:
    rows: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    unknown_labels: dict[str, int] = field(default_factory=dict)
    organizational_labels: dict[str, int] = field(default_factory=dict)  # dropped: no valid direct label there
    views: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    # How the split was made: "release" (the release's own train/validation kept) or "resplit" (by problem).
    split_method: str = "resplit"
    # Kept release splits only: problem ids and image hashes on both sides (reported, never moved).
    split_overlap: dict[str, list[str]] = field(default_factory=dict)

    @property
    def skipped_reasons(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason, _ in self.skipped).most_common())

    def to_json(self) -> dict:
        return {**asdict(self), "skipped_reasons": self.skipped_reasons}


KNOWN = "known"
UNKNOWN_LABEL = "unknown label"
NO_DIMENSION = "label of no dimension"
ORGANIZATIONAL = "organizational label"


def label_status(label: str, ontology: Ontology) -> str:
    """How the bound release takes one raw label: `KNOWN` (a concept of a dimension, eligible as a direct label),
    `UNKNOWN_LABEL` (no such name), `NO_DIMENSION` (a name the release has, but no concept of Area, Scope or Ability:
    a dimension itself, or the unsupported-material marker among real labels) or `ORGANIZATIONAL`."""
    name = concept_name(label)
    concept = ontology.concepts.get(name)
    if concept is None:
        return NO_DIMENSION if name in DIMENSIONS or name == UNSUPPORTED_TAG else UNKNOWN_LABEL
    if concept.dimension not in DIMENSIONS:
        return NO_DIMENSION
    if not ontology.is_eligible(name):
        return ORGANIZATIONAL
    return KNOWN


def resolve_labels(labels: Iterable[str], ontology: Ontology) -> tuple[dict[str, list[str]], list[str]]:
    """Labels (names or IRIs of any namespace) grouped by the dimension the release gives them, and the
    normalised names the release does not know."""
    known, unknown = [], []
    for label in labels:
        name = concept_name(label)
        (known if name in ontology else unknown).append(name)
    return ontology.group_by_dimension(known), unknown


def label_items(
    items: Iterable[WorksheetItem], ontology: Ontology, skipped: SkipLog
) -> tuple[list[LabelledRow], Counter, Counter]:
    """Every item with its answer string; unknown labels, and labels the release makes organizational (no valid
    direct label), are dropped and counted; items left without any label are skipped, and an image seen before
    with the same answer is skipped as a duplicate."""
    rows: list[LabelledRow] = []
    unknown_counts: Counter = Counter()
    organizational_counts: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    for item in items:
        where = f"{item.source} ({item.problem_id}, {item.view})"
        if item.unsupported:
            answer = format_unsupported()
        else:
            organizational = {label for label in item.labels if label_status(label, ontology) == ORGANIZATIONAL}
            organizational_counts.update(concept_name(label) for label in organizational)
            grouped, unknown = resolve_labels([label for label in item.labels if label not in organizational], ontology)
            unknown_counts.update(unknown)
            if not any(grouped.values()):
                detail = f"none of {sorted(set(map(concept_name, item.labels)))} exists in {ontology.version}"
                skipped.skip(where, "no label known to the ontology", detail)
                continue
            answer = format_answer(grouped)
        sha256 = hashlib.sha256(item.image).hexdigest()
        if (sha256, answer) in seen:
            skipped.skip(where, "duplicate image", f"same image and labels as an earlier item ({sha256[:12]})")
            continue
        seen.add((sha256, answer))
        rows.append(LabelledRow(item, answer, sha256))
    return rows, unknown_counts, organizational_counts


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def assign_splits(rows: list[LabelledRow], validation_fraction: float = 0.1, seed: int = 0) -> list[str]:
    """The split of every row. Rows sharing a problem or an identical image form one group, and a group goes
    entirely to one side, decided by a hash of the group, so adding items never moves existing problems."""
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    parent = list(range(len(rows)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_by_key: dict[str, int] = {}
    for index, row in enumerate(rows):
        for key in (f"problem:{row.item.problem_id}", f"image:{row.image_sha256}"):
            if key in first_by_key:
                parent[find(index)] = find(first_by_key[key])
            else:
                first_by_key[key] = index
    members: dict[int, list[int]] = defaultdict(list)
    for index in range(len(rows)):
        members[find(index)].append(index)
    groups = sorted(members.values(), key=lambda group: min(rows[i].item.problem_id for i in group))
    scores = [_unit_hash(f"{seed}:{min(rows[i].item.problem_id for i in group)}") for group in groups]
    in_validation = [score < validation_fraction for score in scores]
    # Small releases: still give each side at least one group, or training has nothing to validate against.
    if validation_fraction > 0 and len(groups) >= 2:
        if not any(in_validation):
            in_validation[scores.index(min(scores))] = True
        if all(in_validation):
            in_validation[scores.index(max(scores))] = False
    splits = [""] * len(rows)
    for group, validation in zip(groups, in_validation):
        for index in group:
            splits[index] = "validation" if validation else "train"
    return splits


SPLIT_KEPT = "release"
SPLIT_RESPLIT = "resplit"


def release_split_of(rows: list[LabelledRow], release_splits: Mapping[str, str] | None) -> list[str] | None:
    """The release's own split of every row, when every row has one and both sides are present; else None
    (a single-split release, or a mix of layouts, is re-split)."""
    if not release_splits or not rows:
        return None
    splits = [release_splits.get(row.item.source) for row in rows]
    return splits if set(splits) == set(SPLITS) else None


def _overlap(rows: list[LabelledRow], splits: list[str]) -> dict[str, list[str]]:
    sides: dict[str, dict[str, set[str]]] = {"problem_id": defaultdict(set), "image_sha256": defaultdict(set)}
    for row, split in zip(rows, splits):
        sides["problem_id"][row.item.problem_id].add(split)
        sides["image_sha256"][row.image_sha256].add(split)
    return {key: sorted(value for value, seen in found.items() if len(seen) > 1) for key, found in sides.items()}


def _split_columns(rows: list[LabelledRow]) -> dict[str, list]:
    return {
        "image": [{"bytes": row.item.image, "path": None} for row in rows],
        "labels": [row.answer for row in rows],
        "problem_id": [row.item.problem_id for row in rows],
        "view": [row.item.view for row in rows],
        "kind": [row.item.kind for row in rows],
        "source": [row.item.source for row in rows],
        "image_sha256": [row.image_sha256 for row in rows],
    }


def build_dataset(
    items: Iterable[WorksheetItem],
    ontology: Ontology,
    validation_fraction: float = 0.1,
    seed: int = 0,
    skipped: SkipLog | None = None,
    release_splits: Mapping[str, str] | None = None,
) -> tuple[datasets.DatasetDict, DatasetSummary]:
    """The `DatasetDict` of the contract and its summary; `skipped` carries skips from reading the release.
    `release_splits` (item source -> split, `ContentRelease.splits`): a release's own train/validation split,
    kept as it is when it covers every row and both sides; overlaps are reported in the summary, not moved."""
    log = SkipLog(list(skipped.problems)) if skipped else SkipLog()
    rows, unknown, organizational = label_items(items, ontology, log)
    kept = release_split_of(rows, release_splits)
    splits = kept if kept is not None else assign_splits(rows, validation_fraction, seed)
    by_split = {name: [row for row, split in zip(rows, splits) if split == name] for name in SPLITS}
    dataset = datasets.DatasetDict(
        {name: datasets.Dataset.from_dict(_split_columns(by_split[name]), features=FEATURES) for name in SPLITS}
    )
    label_counts: dict[str, Counter] = {dimension: Counter() for dimension in DIMENSIONS}
    for row in rows:
        for dimension, names in json.loads(row.answer).items():
            if dimension in label_counts:
                label_counts[dimension].update(names)
    summary = DatasetSummary(
        rows={name: len(by_split[name]) for name in SPLITS},
        label_counts={dimension: dict(counts.most_common()) for dimension, counts in label_counts.items()},
        unknown_labels=dict(unknown.most_common()),
        organizational_labels=dict(organizational.most_common()),
        views=dict(Counter(row.item.view for row in rows)),
        kinds=dict(Counter(row.item.kind for row in rows).most_common()),
        skipped=list(log.entries),
        split_method=SPLIT_KEPT if kept is not None else SPLIT_RESPLIT,
        split_overlap=_overlap(rows, splits) if kept is not None else {},
    )
    return dataset, summary


# --- checks on a written dataset (run by the asset checks, usable on any saved copy) ----------------------


def unknown_labels_in(dataset: datasets.DatasetDict, ontology: Ontology) -> Counter:
    """Labels in the answers that the release does not know, or that sit under the wrong dimension."""
    problems: Counter = Counter()
    for split in dataset.values():
        for answer in split["labels"]:
            parsed = json.loads(answer)
            if parsed == json.loads(format_unsupported()):
                continue
            for dimension, names in parsed.items():
                for name in names:
                    concept = ontology.concepts.get(name)
                    if concept is None or concept.dimension != dimension:
                        problems[f"{dimension}:{name}"] += 1
    return problems


def empty_label_rows(dataset: datasets.DatasetDict) -> list[str]:
    """Problem ids of rows whose answer names no concept (unsupported material excepted)."""
    empty = []
    for split in dataset.values():
        for answer, problem_id, view in zip(split["labels"], split["problem_id"], split["view"]):
            parsed = json.loads(answer)
            if view != "unsupported" and not any(parsed.get(dimension) for dimension in DIMENSIONS):
                empty.append(problem_id)
    return empty


def split_overlap(dataset: datasets.DatasetDict) -> dict[str, list[str]]:
    """Problem ids and image hashes found in more than one split (empty lists when the splits are disjoint)."""
    train, validation = dataset["train"], dataset["validation"]
    return {
        "problem_id": sorted(set(train["problem_id"]) & set(validation["problem_id"])),
        "image_sha256": sorted(set(train["image_sha256"]) & set(validation["image_sha256"])),
    }
