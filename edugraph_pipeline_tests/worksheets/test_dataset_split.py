"""Labelling against the ontology and the grouped, deterministic train/validation split."""

import json

from edugraph_pipeline.worksheets.dataset import COLUMNS, LabelledRow, assign_splits, build_dataset, resolve_labels
from edugraph_pipeline.worksheets.items import WorksheetItem
from edugraph_pipeline_tests.worksheets.worksheet_helpers import png_bytes


def item(problem_id, view="question", colour=(1, 2, 3), labels=("Addition", "NumbersSmaller10")):
    return WorksheetItem(png_bytes(colour=colour), labels, problem_id, view, "addition", "test")


def test_resolve_labels_normalises_iris_and_reports_unknown(ontology):
    grouped, unknown = resolve_labels(
        ["http://edugraph.io/edu#Addition", "http://edugraph.io/edu/NumbersSmaller10", " ProcedureExecution ",
         "Nope"], ontology)
    assert grouped == {"Area": ["Addition"], "Scope": ["NumbersSmaller10"], "Ability": ["ProcedureExecution"]}
    assert unknown == ["Nope"]


def test_split_keeps_problems_and_identical_images_together(ontology):
    items = []
    for index in range(200):
        colour = (index % 256, index // 256, 7)
        items += [item(f"p{index}", "question", colour), item(f"p{index}", "solution", (colour[0], colour[1], 9))]
    # The same picture published under another problem id must follow its twin.
    items.append(item("copy-of-p5", "question", (5, 0, 7), labels=("Subtraction",)))
    dataset, summary = build_dataset(items, ontology, validation_fraction=0.2, seed=1)
    assert list(dataset["train"].features) == list(COLUMNS)
    train, validation = dataset["train"], dataset["validation"]
    assert not set(train["problem_id"]) & set(validation["problem_id"])
    assert not set(train["image_sha256"]) & set(validation["image_sha256"])
    assert 0.1 < summary.rows["validation"] / sum(summary.rows.values()) < 0.3
    side_of = {pid: name for name, split in dataset.items() for pid in split["problem_id"]}
    assert side_of["p5"] == side_of["copy-of-p5"]
    # Deterministic, and stable when more problems arrive.
    again, _ = build_dataset(items + [item("new", colour=(1, 1, 250))], ontology, validation_fraction=0.2, seed=1)
    assert set(validation["problem_id"]) <= set(again["validation"]["problem_id"])


def test_tiny_release_still_has_both_splits(ontology):
    rows = [LabelledRow(item(f"p{i}"), "{}", f"sha{i}") for i in range(2)]
    assert sorted(assign_splits(rows, 0.1)) == ["train", "validation"]


def test_unsupported_items_keep_the_error_answer_and_empty_items_are_skipped(ontology):
    items = [
        item("p1"),
        WorksheetItem(png_bytes(colour=(9, 9, 9)), ("UnsupportedMaterial",), "u1", "unsupported", "photo", "t"),
        item("p2", colour=(3, 3, 3), labels=("Unknown1", "Unknown2")),
        item("p1", colour=(1, 2, 3)),  # the same image and labels again
    ]
    dataset, summary = build_dataset(items, ontology)
    answers = {row["problem_id"]: row["labels"] for split in dataset.values() for row in split.select_columns(
        ["problem_id", "labels"])}
    assert json.loads(answers["u1"]) == {"Error": "UnsupportedMaterial"}
    assert "p2" not in answers
    assert summary.unknown_labels == {"Unknown1": 1, "Unknown2": 1}
    assert summary.skipped_reasons == {"no label known to the ontology": 1, "duplicate image": 1}
