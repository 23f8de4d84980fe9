"""The label field of metadata.jsonl rows (`labels` or `tags`, per release) and upstream's ingestion contract:
fail-closed for published releases with every problem reported and nothing published, skip-and-count where
EDUGRAPH_CONTENT_STRICT=false says so; which sources are strict by default."""

import json
import tarfile

import pytest

from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline.worksheets.content_formats import read_folder
from edugraph_pipeline.worksheets.content_sources import read_content
from edugraph_pipeline.worksheets.contract import (
    IDENTICAL_ACROSS_SPLITS,
    ReleaseRejected,
    contract_problems,
    enforce,
    is_strict,
    parse_strict,
)
from edugraph_pipeline.worksheets.dataset import NO_DIMENSION, UNKNOWN_LABEL
from edugraph_pipeline.worksheets.imagefolder import DUPLICATE_PATH, MALFORMED_ROW
from edugraph_pipeline.worksheets.release_series import list_release_refs
from edugraph_pipeline_tests.worksheets import test_worksheet_asset as asset_tests
from edugraph_pipeline_tests.worksheets.test_worksheet_asset import TAG, materialize
from edugraph_pipeline_tests.worksheets.worksheet_helpers import write_imagefolder_release

data_dir = asset_tests.data_dir  # the fixture: an artifact store holding ontology v0.21.0


def rows_of(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_rows(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def labelled_release(root, real_tag_sets, count=4):
    """An ImageFolder release whose rows use `labels` (upstream since v0.22.2-01)."""
    write_imagefolder_release(root, real_tag_sets[:count])
    for split in ("train", "validation"):
        write_rows(root / split / "metadata.jsonl",
                   [{"file_name": r["file_name"], "labels": r["tags"], "solution": r["solution"]}
                    for r in rows_of(root / split / "metadata.jsonl")])
    return root


def test_the_label_field_is_read_per_release(tmp_path, ontology, real_tag_sets):
    root = labelled_release(tmp_path / "rel", real_tag_sets)
    auto = read_folder(root, "rel", "v")
    assert (auto.label_field, len(auto.items), len(auto.skipped)) == ("labels", 8, 0)
    assert read_folder(root, "rel", "v", label_field="labels").label_field == "labels"
    pinned_to_tags = read_folder(root, "rel", "v", label_field="tags")
    assert pinned_to_tags.items == [] and pinned_to_tags.skipped.reasons() == {MALFORMED_ROW: 8}
    assert "train/metadata.jsonl:1: uses 'labels' where this release's rows use 'tags'" in [
        detail for _, _, detail in pinned_to_tags.skipped.entries]
    old = tmp_path / "old"
    write_imagefolder_release(old, real_tag_sets[:4])
    assert read_folder(old, "old", "v").label_field == "tags"
    with pytest.raises(Exception, match="label field 'label': expected one of auto, labels, tags"):
        read_folder(old, "old", "v", label_field="label")


def test_malformed_label_rows_name_their_file_and_line(tmp_path, real_tag_sets):
    root = labelled_release(tmp_path / "rel", real_tag_sets)
    train = root / "train" / "metadata.jsonl"
    rows = rows_of(train)
    rows[0] = {**rows[0], "tags": rows[0]["labels"]}  # both
    rows[1] = {key: value for key, value in rows[1].items() if key != "labels"}  # neither
    rows[2] = {**rows[2], "labels": ["Addition", 7]}  # a non-string
    rows[3] = {**rows[3], "labels": ["Addition", "Addition"]}  # a repeated value
    rows[4] = {"file_name": rows[4]["file_name"], "tags": rows[4]["labels"], "solution": rows[4]["solution"]}  # mixed
    write_rows(train, rows)
    release = read_folder(root, "rel", "v")
    assert release.label_field == "labels"  # what most rows use
    details = {problem.line: problem.detail for problem in release.skipped.problems}
    assert details == {
        1: "train/metadata.jsonl:1: has both 'labels' and 'tags'; a row names its labels in exactly one field",
        2: "train/metadata.jsonl:2: has no 'labels' field (the label field of this release)",
        3: "train/metadata.jsonl:3: field 'labels' must be a list of concept names or IRIs, got list",
        4: "train/metadata.jsonl:4: field 'labels' repeats 'Addition'; labels are a set",
        5: "train/metadata.jsonl:5: uses 'tags' where this release's rows use 'labels'",
    }
    assert {(p.split, p.file, p.reason) for p in release.skipped.problems} == {
        ("train", "train/metadata.jsonl", MALFORMED_ROW)}


def hostile_release(root, real_tag_sets):
    """A release with a path twice in train (line 7), a row whose image is missing (line 8) and an unknown label
    on train line 1; everything else as upstream makes it."""
    write_imagefolder_release(root, real_tag_sets[:4])
    train = root / "train" / "metadata.jsonl"
    rows = rows_of(train)
    rows[0] = {**rows[0], "tags": [*rows[0]["tags"], "NoSuchConcept"]}
    rows += [dict(rows[1]), {"file_name": "m/gone_mode-Q.png", "tags": ["Addition"], "solution": False}]
    write_rows(train, rows)
    return root


def archive(folder, path):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=".")
    return path


def test_a_strict_release_fails_with_every_problem_and_publishes_nothing(data_dir, tmp_path, real_tag_sets):
    release = archive(hostile_release(tmp_path / "rel", real_tag_sets), tmp_path / "content-v0.21.0.tar.gz")
    result = materialize(data_dir, ContentSource(source=str(release)))  # an archive: strict by default
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error.message
    assert "fails the ingestion contract, nothing was published: 3 problem(s)" in error
    assert "- train/metadata.jsonl:7 [train]: path twice in a split (train/metadata.jsonl:7: " in error
    assert "- train/metadata.jsonl:8 [train]: missing image (train/m/gone_mode-Q.png does not exist)" in error
    assert "- train/metadata.jsonl:1 [train]: unknown label ('NoSuchConcept' under ontology v0.21.0)" in error
    table = failure.step_failure_data.user_failure_data.metadata["problems"].value
    assert table.splitlines()[0] == "| Split | File | Line | Reason | Detail |" and len(table.splitlines()) == 5
    assert "| train | train/metadata.jsonl | 7 | path twice in a split |" in table
    assert not ArtifactStore(data_dir).asset_dir("worksheet_dataset", TAG).exists()

    lenient = materialize(data_dir, ContentSource(source=str(release), strict="false"))
    assert lenient.success
    metadata = {k: v.value for k, v in lenient.asset_materializations_for_node("worksheet_dataset")[0].metadata.items()}
    assert metadata["content_strict"] is False and metadata["contract_problems_skipped"] == 3
    assert metadata["skipped_reasons"] == {DUPLICATE_PATH: 1, "missing image": 1}
    assert metadata["unknown_labels"] == {"NoSuchConcept": 1}
    assert metadata["rows_train"] + metadata["rows_validation"] == 8


def test_identical_bytes_across_splits_and_dimensionless_labels_break_the_contract(tmp_path, ontology, real_tag_sets):
    written = write_imagefolder_release(tmp_path, real_tag_sets[:8])
    train_image = tmp_path / "train" / written["train"][0]["file_name"]
    copy = written["validation"][1]["file_name"]
    (tmp_path / "validation" / copy).write_bytes(train_image.read_bytes())
    metadata = tmp_path / "validation" / "metadata.jsonl"
    rows = rows_of(metadata)
    rows[0] = {**rows[0], "tags": [*rows[0]["tags"], "Scope"]}
    write_rows(metadata, rows)
    release = read_content(str(tmp_path), tmp_path / "work", ontology)  # a plain folder reads leniently
    problems = contract_problems(release, ontology)
    assert [(p.where, p.reason) for p in problems] == [
        ("validation/metadata.jsonl:2", IDENTICAL_ACROSS_SPLITS), ("validation/metadata.jsonl:1", NO_DIMENSION)]
    first = written['train'][0]['file_name']
    assert problems[0].detail == f"validation/{copy} has the bytes of train/{first} (train/metadata.jsonl:1)"
    with pytest.raises(ReleaseRejected, match="2 problem\\(s\\)") as raised:
        enforce(release, ontology)
    assert raised.value.problems == problems
    assert UNKNOWN_LABEL not in {p.reason for p in problems}


def test_which_sources_are_strict(tmp_path, real_tag_sets):
    folder = tmp_path / "rel"
    write_imagefolder_release(folder, real_tag_sets[:2])
    releases = tmp_path / "releases"
    releases.mkdir()
    packed = archive(folder, releases / "c-v1.0.0.tar.gz")
    assert not is_strict("sample", None) and not is_strict(str(folder), None)
    assert is_strict(str(releases), None) and is_strict(str(packed), None)
    assert is_strict("hf://datasets/a/b", None) and is_strict("git+https://example.com/c.git", None)
    assert is_strict("https://example.com/c.tar.gz", None)
    assert is_strict(str(folder), True) and not is_strict("hf://datasets/a/b", False)
    assert [parse_strict(v) for v in ("", "true", "False", "0", "yes")] == [None, True, False, False, True]
    with pytest.raises(ValueError, match="EDUGRAPH_CONTENT_STRICT='maybe'"):
        parse_strict("maybe")


def test_git_content_tags_with_revisions_and_an_old_tags_release(tmp_path, ontology, real_tag_sets):
    from edugraph_pipeline_tests.kit.remotes import commit_release, init_repo

    repo = init_repo(tmp_path / "content.git")

    def release_files(folder):
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    old = tmp_path / "old"
    write_imagefolder_release(old, real_tag_sets[:4])
    commits = {"v0.21.0": commit_release(repo, "v0.21.0", release_files(old))}
    new = labelled_release(tmp_path / "new", real_tag_sets)
    commits["v0.21.0-01"] = commit_release(repo, "v0.21.0-01", release_files(new))
    (new / "validation" / "metadata.jsonl").write_text('{"file_name": "x.png"}\n')
    commits["v0.21.0-10"] = commit_release(repo, "v0.21.0-10", release_files(new))
    commits["v0.21.0-02"] = commit_release(repo, "v0.21.0-02", release_files(old))  # a revision with `tags` rows
    source = f"git+{tmp_path / 'content.git'}"
    refs = list_release_refs(source)
    assert [(r.name, r.commit, r.ontology_version) for r in refs] == [
        (name, commits[name], None if name == "v0.21.0" else "v0.21.0")
        for name in ("v0.21.0", "v0.21.0-01", "v0.21.0-02", "v0.21.0-10")]
    content = read_content(source, tmp_path / "work", ontology, cache_dir=tmp_path / "cache", release="v0.21.0-02")
    assert (content.revision, content.label_field, len(content.items), len(content.skipped)) == (
        "v0.21.0-02", "tags", 8, 0)
    newest = read_content(source, tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    assert newest.revision == "v0.21.0-10" and newest.skipped.reasons() == {MALFORMED_ROW: 1}


def test_an_organizational_label_breaks_the_contract_and_is_dropped_when_lenient(tmp_path, real_tag_sets):
    """Under the 2026 ontology (tagged v0.26.0, where eligibility applies) `LengthMeasurement` has constituent parts:
    an organizational descriptor, no valid direct label. Valid under v0.21.0, where there is no eligibility."""
    from edugraph_pipeline.worksheets.dataset import ORGANIZATIONAL, build_dataset, label_status
    from edugraph_pipeline_tests.ontology_2026 import load_ontology_2026
    from edugraph_pipeline_tests.worksheets.worksheet_helpers import load_release

    ontology = load_ontology_2026()
    assert label_status("LengthMeasurement", ontology) == ORGANIZATIONAL
    assert label_status("LengthMeasurement", load_release("v0.21.0")) == "known"
    rows = [{"file_name": f"m/p{i}_mode-Q.png", "tags": ["LengthMeasurement", "NumbersSmaller10"] if i == 1 else
             ["Addition", "NumbersSmaller10"], "generator": "m"} for i in range(3)]
    write_imagefolder_release(tmp_path, rows)
    release = read_content(str(tmp_path), tmp_path / "work", ontology)
    problems = contract_problems(release, ontology)
    assert [(p.where, p.split, p.reason, p.detail) for p in problems] == [
        ("train/metadata.jsonl:3", "train", ORGANIZATIONAL, "'LengthMeasurement' under ontology v0.26.0"),
        ("train/metadata.jsonl:4", "train", ORGANIZATIONAL, "'LengthMeasurement' under ontology v0.26.0"),
    ]
    _, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    assert summary.organizational_labels == {"LengthMeasurement": 2} and summary.unknown_labels == {}
    assert sum(summary.rows.values()) == 6  # the rows stay, without the organizational label
