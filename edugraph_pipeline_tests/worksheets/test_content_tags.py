"""Upstream's content releases as they are now, served by the local Hub: the shared release tagged `v0.21.0-01` (its
rows with `labels`) and `v0.21.0-02` (one row with both fields), beside the old `v0.21.0` (`tags`) and a
`v0.99.0-01` built for an ontology release that does not exist. The sensor sees them in release order and binds each
`-NN` release to its own ontology release; the first builds partition v0.21.0 with its own splits, the second fails
naming the file and line, the last fails naming the missing ontology version."""

import json
import tarfile

import pytest
from huggingface_hub import HfApi

from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.defs.worksheets.sensors import CONTENT_RELEASE_TAG, ONTOLOGY_RELEASE, WORKSHEET_DATASET
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline.worksheets.dataset import SPLIT_KEPT
from edugraph_pipeline_tests.conftest import TOKEN, skip_or_fail
from edugraph_pipeline_tests.kit.hub_server import HubServer, disable_xet, fast_hf_retries, no_phone_home
from edugraph_pipeline_tests.kit.remotes import SHARED_DIR, SHARED_RELEASES, build_ontology_remote
from edugraph_pipeline_tests.worksheets import test_worksheet_asset as asset_tests
from edugraph_pipeline_tests.worksheets.test_worksheet_asset import (
    TAG,
    instance_with_partitions,
    materialize,
    sensor_tick,
)

SHARED_RELEASE = SHARED_DIR / "edugraph-exercises" / "edugraph-exercises-A.tar.gz"
REPO = "edugraph-test/edugraph-exercises"
SOURCE = f"hf://datasets/{REPO}"
BOTH_FIELDS_LINE = 5  # the row of validation/metadata.jsonl that v0.21.0-02 gives both fields
data_dir = asset_tests.data_dir  # the fixture: an artifact store holding ontology v0.21.0


def _rewrite(metadata, change) -> None:
    rows = [json.loads(line) for line in metadata.read_text(encoding="utf-8").splitlines()]
    metadata.write_text("".join(json.dumps(change(index, row)) + "\n" for index, row in enumerate(rows, 1)),
                        encoding="utf-8")


def _to_labels(index: int, row: dict) -> dict:
    return {"file_name": row["file_name"], "labels": row.pop("tags"), "solution": row["solution"]}


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """The local Hub serving the shared release as v0.21.0 (`tags`), v0.21.0-01 (`labels`), v0.21.0-02 (one row
    with both) and v0.99.0-01 (v0.21.0-01's content, tagged for an ontology release that does not exist)."""
    if not SHARED_RELEASE.is_file():
        skip_or_fail(f"{SHARED_RELEASE} is absent (see ../shared/README.md)")
    import huggingface_hub.constants as hf_constants

    work = tmp_path_factory.mktemp("series")
    with tarfile.open(SHARED_RELEASE) as archive:
        archive.extractall(work, filter="data")
    root = work / "edugraph-exercises-A"
    with pytest.MonkeyPatch.context() as patch, HubServer(token=TOKEN) as hub:
        patch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        disable_xet(patch)
        fast_hf_retries(patch)
        no_phone_home(patch)
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
            patch.delenv(name, raising=False)
        patch.setenv("HF_ENDPOINT", hub.endpoint)
        patch.setenv("HF_HOME", str(work / "hf-home"))
        api = HfApi(endpoint=hub.endpoint, token=TOKEN)
        api.create_repo(REPO, repo_type="dataset")
        release_files = ["train/**", "validation/**"]
        api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=root, allow_patterns=release_files,
                          commit_message="v0.21.0")
        api.create_tag(REPO, repo_type="dataset", tag="v0.21.0")
        for split in ("train", "validation"):
            _rewrite(root / split / "metadata.jsonl", _to_labels)
        api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=root, allow_patterns="*/metadata.jsonl",
                          commit_message="v0.21.0-01")
        api.create_tag(REPO, repo_type="dataset", tag="v0.21.0-01")
        first = hub.head(REPO, "dataset")
        _rewrite(root / "validation" / "metadata.jsonl",
                 lambda index, row: {**row, "tags": row["labels"]} if index == BOTH_FIELDS_LINE else row)
        api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=root, allow_patterns="*/metadata.jsonl",
                          commit_message="v0.21.0-02")
        api.create_tag(REPO, repo_type="dataset", tag="v0.21.0-02")
        api.create_tag(REPO, repo_type="dataset", tag="v0.99.0-01", revision=first)
        refs = {ref.name: ref.target_commit for ref in api.list_repo_refs(REPO, repo_type="dataset").tags}
        yield {"hub": hub, "refs": refs, "work": work}


@pytest.fixture(scope="module")
def ontology_remote_v021(tmp_path_factory):
    if not (SHARED_RELEASES / TAG).is_dir():
        skip_or_fail(f"{SHARED_RELEASES / TAG} is absent (see ../shared/README.md)")
    return build_ontology_remote(tmp_path_factory.mktemp("ontology") / "edugraph-ontology", tags=["v0.20.0", TAG])


def test_the_series_is_listed_in_release_order_with_commits(series, tmp_path):
    refs = ContentSource(source=SOURCE, cache_dir=str(tmp_path / "cache")).list_release_refs()
    assert [ref.name for ref in refs] == ["v0.21.0", "v0.21.0-01", "v0.21.0-02", "v0.99.0-01"]
    assert [ref.commit for ref in refs] == [series["refs"][ref.name] for ref in refs]
    assert [ref.ontology_version for ref in refs] == [None, "v0.21.0", "v0.21.0", "v0.99.0"]


def test_the_sensor_binds_each_release_to_the_ontology_release_it_was_built_for(series, ontology_remote_v021, tmp_path):
    refs = series["refs"]
    instance = instance_with_partitions()  # no ontology partition yet: the sensor adds v0.21.0 itself
    source = ContentSource(source=SOURCE, cache_dir=str(tmp_path / "cache"))

    def tick(cursor):
        return sensor_tick(instance, source, cursor, ontology_remote=ontology_remote_v021, cache=tmp_path / "git")

    # The first tick builds the newest release only, and that one is built for an ontology release that does not
    # exist: nothing is requested, and the reason names both.
    first = tick(None)
    assert first.run_requests == [] and not first.dynamic_partitions_requests
    assert "content release v0.99.0-01 is built for ontology release v0.99.0, which does not exist in" in (
        first.skip_reason.skip_message)
    assert "newest: v0.20.0, v0.21.0" in first.skip_reason.skip_message

    # With v0.21.0 seen before, the two revisions of v0.21.0 are requested in order, in partition v0.21.0 (added,
    # with its ontology_release); v0.99.0-01 still waits for its ontology release.
    seen = json.dumps({"releases": {"v0.21.0": refs["v0.21.0"]}})
    second = tick(seen)
    assert [(r.partition_key, r.tags[CONTENT_RELEASE_TAG]) for r in second.run_requests] == [
        (TAG, f"v0.21.0-01@{refs['v0.21.0-01']}"), (TAG, f"v0.21.0-02@{refs['v0.21.0-02']}")]
    assert all(r.asset_selection == [ONTOLOGY_RELEASE, WORKSHEET_DATASET] for r in second.run_requests)
    [added] = second.dynamic_partitions_requests
    assert added.partition_keys == [TAG]
    cursor = json.loads(second.cursor)["releases"]
    assert cursor == {name: refs[name] for name in ("v0.21.0", "v0.21.0-01", "v0.21.0-02")}

    instance.add_dynamic_partitions("ontology_releases", [TAG])
    third = tick(second.cursor)
    assert third.run_requests == [] and "v0.99.0-01 is built for ontology release v0.99.0" in third.skip_reason.skip_message
    # An old cursor ({"seen": [...]}, Hub releases as tag@commit) is read as release -> commit.
    old = json.dumps({"seen": [f"{name}@{refs[name]}" for name in ("v0.21.0", "v0.21.0-01", "v0.21.0-02")]})
    assert tick(old).run_requests == []


def test_v0_21_0_01_builds_the_partition_with_its_own_splits_and_both_versions_in_lineage(series, data_dir, tmp_path):
    commit = series["refs"]["v0.21.0-01"]
    source = ContentSource(source=SOURCE, cache_dir=str(tmp_path / "cache"))
    result = materialize(data_dir, source, tags={CONTENT_RELEASE_TAG: f"v0.21.0-01@{commit}"})
    assert result.success
    metadata = {key: value.value for key, value in
                result.asset_materializations_for_node("worksheet_dataset")[0].metadata.items()}
    assert (metadata["rows_train"], metadata["rows_validation"]) == (890, 178)
    assert metadata["split_method"] == SPLIT_KEPT and metadata["num_skipped"] == 0
    assert (metadata["content_revision"], metadata["content_version"]) == ("v0.21.0-01", commit)
    assert metadata["content_built_for_ontology_version"] == metadata["ontology_version"] == TAG
    assert metadata["content_label_field"] == "labels" and metadata["content_strict"] is True
    lineage = json.loads((data_dir / "worksheet_dataset" / TAG / "lineage.json").read_text())
    assert (lineage["ontology_version"], lineage["content_revision"], lineage["content_label_field"]) == (
        TAG, "v0.21.0-01", "labels")
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations())


def test_v0_21_0_02_fails_naming_the_file_and_line_and_publishes_nothing(series, data_dir, tmp_path):
    commit = series["refs"]["v0.21.0-02"]
    source = ContentSource(source=SOURCE, cache_dir=str(tmp_path / "cache"))
    result = materialize(data_dir, source, tags={CONTENT_RELEASE_TAG: f"v0.21.0-02@{commit}"})
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error.message
    assert f"validation/metadata.jsonl:{BOTH_FIELDS_LINE} [validation]: malformed metadata.jsonl row" in error
    assert "has both 'labels' and 'tags'" in error and "1 problem(s)" in error
    assert not ArtifactStore(data_dir).asset_dir("worksheet_dataset", TAG).exists()


def test_a_release_built_for_another_ontology_release_is_refused_before_it_is_read(series, data_dir, tmp_path):
    commit = series["refs"]["v0.99.0-01"]
    source = ContentSource(source=SOURCE, cache_dir=str(tmp_path / "cache"))
    before = len(series["hub"].requests_for("resolve"))
    result = materialize(data_dir, source, tags={CONTENT_RELEASE_TAG: f"v0.99.0-01@{commit}"})
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert ("content release v0.99.0-01 is built for ontology release v0.99.0, not v0.21.0"
            in failure.step_failure_data.error.message)
    assert len(series["hub"].requests_for("resolve")) == before
    # A source pinned to such a tag is refused too.
    pinned = materialize(data_dir, ContentSource(source=f"{SOURCE}@v0.99.0-01", cache_dir=str(tmp_path / "cache")))
    assert not pinned.success
    assert "built for ontology release v0.99.0, not v0.21.0" in pinned.get_step_failure_events()[0].step_failure_data.error.message
    assert not ArtifactStore(data_dir).asset_dir("worksheet_dataset", TAG).exists()


def test_the_asset_fails_on_an_unknown_label_field_setting(data_dir):
    result = materialize(data_dir, ContentSource(source="sample", sample_count=4, label_field="label"))
    assert not result.success
    assert "EDUGRAPH_CONTENT_LABEL_FIELD='label': expected one of auto, labels, tags" in (
        result.get_step_failure_events()[0].step_failure_data.error.message)
    strict = materialize(data_dir, ContentSource(source="sample", sample_count=4, strict="maybe"))
    assert "EDUGRAPH_CONTENT_STRICT='maybe': expected true or false" in (
        strict.get_step_failure_events()[0].step_failure_data.error.message)
