"""A release's own train/validation split is kept (overlaps reported, not moved); a single split is re-split."""

import json

from edugraph_pipeline.worksheets.content_sources import read_content
from edugraph_pipeline.worksheets.dataset import SPLIT_KEPT, SPLIT_RESPLIT, build_dataset, split_overlap
from edugraph_pipeline_tests.worksheets.worksheet_helpers import png_bytes, write_imagefolder_release


def test_the_release_split_is_kept_even_where_file_names_repeat_across_splits(tmp_path, ontology, real_tag_sets):
    written = write_imagefolder_release(tmp_path, real_tag_sets[:8])
    # Upstream reuses a file name in validation/ for a different exercise: a different problem, not an overlap.
    reused = dict(written["train"][0])
    (tmp_path / "validation" / reused["file_name"]).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "validation" / reused["file_name"]).write_bytes(png_bytes(colour=(7, 250, 7)))
    with open(tmp_path / "validation" / "metadata.jsonl", "a", encoding="utf-8") as metadata:
        metadata.write(json.dumps(reused) + "\n")
    release = read_content(str(tmp_path), tmp_path / "work", ontology)
    dataset, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    assert summary.split_method == SPLIT_KEPT
    assert summary.rows == {"train": 12, "validation": 5}
    folders = {name: {s.split(":", 1)[1].split("/")[-3] for s in dataset[name]["source"]} for name in dataset}
    assert folders == {"train": {"train"}, "validation": {"validation"}}
    assert all(pid.startswith("validation/") for pid in dataset["validation"]["problem_id"])
    assert summary.split_overlap == {"problem_id": [], "image_sha256": []}


def test_an_image_on_both_sides_is_reported_and_left_where_the_release_put_it(tmp_path, ontology, real_tag_sets):
    written = write_imagefolder_release(tmp_path, real_tag_sets[:8])
    train_image = tmp_path / "train" / written["train"][0]["file_name"]
    (tmp_path / "validation" / written["validation"][0]["file_name"]).write_bytes(train_image.read_bytes())
    release = read_content(str(tmp_path), tmp_path / "work", ontology)
    dataset, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    assert summary.split_method == SPLIT_KEPT and summary.rows == {"train": 12, "validation": 4}
    assert len(summary.split_overlap["image_sha256"]) == 1 and summary.split_overlap["problem_id"] == []
    assert split_overlap(dataset)["image_sha256"] == summary.split_overlap["image_sha256"]  # the check sees it too
    assert json.loads(json.dumps(summary.to_json()))["split_overlap"] == summary.split_overlap


def test_a_single_split_release_is_re_split_by_problem(tmp_path, ontology, real_tag_sets):
    written = write_imagefolder_release(tmp_path, real_tag_sets[:20])
    (tmp_path / "validation" / "metadata.jsonl").unlink()  # only train/ remains a split
    release = read_content(str(tmp_path), tmp_path / "work", ontology)
    assert set(release.splits.values()) == {"train"}
    dataset, summary = build_dataset(release.items, ontology, validation_fraction=0.3, release_splits=release.splits)
    assert summary.split_method == SPLIT_RESPLIT and summary.split_overlap == {}
    assert sum(summary.rows.values()) == len(written["train"]) and summary.rows["validation"] > 0
    assert split_overlap(dataset) == {"problem_id": [], "image_sha256": []}


def test_a_git_content_release_keeps_its_splits_and_records_its_tag(tmp_path, ontology, real_tag_sets):
    from edugraph_pipeline_tests.kit.remotes import commit_release, init_repo

    folder = tmp_path / "release"
    write_imagefolder_release(folder, real_tag_sets[:8])
    files = {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    commit = commit_release(init_repo(tmp_path / "content.git"), "v2.0.0", files)
    release = read_content(f"git+{tmp_path / 'content.git'}", tmp_path / "work", ontology,
                           cache_dir=tmp_path / "cache")
    assert (release.revision, release.version) == ("v2.0.0", f"v2.0.0@{commit}")
    _, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    assert summary.split_method == SPLIT_KEPT and summary.rows == {"train": 12, "validation": 4}
