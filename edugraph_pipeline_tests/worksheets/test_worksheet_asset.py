"""The worksheet_dataset asset and content_release_sensor, run by Dagster against real files."""

import json
import tarfile

import dagster as dg
import datasets
import pytest

from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.defs.worksheets.assets import worksheet_dataset
from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.defs.worksheets.sensors import CONTENT_RELEASE_TAG, content_release_sensor
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline_tests.worksheets.worksheet_helpers import write_imagefolder_release

TAG = "v0.21.0"


@pytest.fixture
def data_dir(tmp_path, ontology):
    folder = ArtifactStore(tmp_path / "data").asset_dir("ontology_release", TAG)
    folder.mkdir(parents=True)
    ontology.save(folder / "ontology.json")
    return tmp_path / "data"


def instance_with_partitions(*tags):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("ontology_releases", list(tags))
    return instance


def sensor_tick(instance, content_source, cursor=None, ontology_remote="/nonexistent/ontology.git", cache=None):
    """One evaluation of content_release_sensor (an ontology remote that is not there unless one is given)."""
    ontology = OntologyRepository(remote=str(ontology_remote), cache_dir=str(cache or "/nonexistent/cache"))
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"content_source": content_source, "ontology_repository": ontology}
    )
    return content_release_sensor(context)


def materialize(data_dir, content_source, tags=None):
    return dg.materialize(
        [worksheet_dataset],
        partition_key=TAG,
        resources={"artifact_store": ArtifactStoreResource(data_dir=str(data_dir)), "content_source": content_source},
        instance=instance_with_partitions(TAG),
        tags=tags,
        raise_on_error=False,
    )


def test_sample_dataset_is_materialized_with_checks_and_metadata(data_dir):
    result = materialize(data_dir, ContentSource(source="sample", sample_count=30, sample_seed=2))
    assert result.success
    metadata = result.asset_materializations_for_node("worksheet_dataset")[0].metadata
    assert metadata["rows_train"].value + metadata["rows_validation"].value == 30
    assert metadata["ontology_version"].value == TAG
    assert metadata["content_version"].value.startswith("sample-")
    assert "data:image/png;base64," in metadata["examples"].value
    assert "| Area |" in metadata["label_counts"].value
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
    assert checks == {"labels_exist_in_ontology": True, "no_empty_label_sets": True, "splits_disjoint": True}
    folder = ArtifactStore(data_dir).asset_dir("worksheet_dataset", TAG)
    dataset = datasets.load_from_disk(str(folder / "dataset"))
    assert set(dataset) == {"train", "validation"}
    assert json.loads((folder / "lineage.json").read_text())["ontology_version"] == TAG
    assert not list((data_dir / ".work").iterdir())


def test_release_named_by_the_sensor_tag_is_read(data_dir, tmp_path, real_tag_sets):
    releases = tmp_path / "releases"
    releases.mkdir()
    for index, name in enumerate(["c-v1.0.0.tar.gz", "c-v1.1.0.tar.gz"]):
        source = tmp_path / f"src{index}"
        write_imagefolder_release(source, real_tag_sets[: 3 + index])
        with tarfile.open(releases / name, "w:gz") as tar:
            tar.add(source, arcname=".")
    result = materialize(data_dir, ContentSource(source=str(releases)), tags={CONTENT_RELEASE_TAG: "c-v1.0.0.tar.gz"})
    assert result.success
    metadata = result.asset_materializations_for_node("worksheet_dataset")[0].metadata
    assert metadata["dagster/row_count"].value == 6
    assert metadata["content_source"].value.endswith("c-v1.0.0.tar.gz")


def test_release_without_usable_items_fails_naming_the_source(data_dir, tmp_path):
    (tmp_path / "rel" / "train").mkdir(parents=True)
    (tmp_path / "rel" / "train" / "metadata.jsonl").write_text('{"file_name": "m/gone.png", "tags": ["Addition"]}\n')
    result = materialize(data_dir, ContentSource(source=str(tmp_path / "rel")))
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert f"content release {tmp_path / 'rel'}" in failure.message and "has no usable item" in failure.message
    assert "missing image" in failure.message


def test_sensor_requests_each_release_once_for_the_newest_ontology(tmp_path):
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "c-v1.0.0.tar.gz").write_bytes(b"")
    (releases / "c-v1.1.0.tar.gz").write_bytes(b"")
    instance = instance_with_partitions("v0.9.6", "v0.21.0", "v0.10.0")
    source = ContentSource(source=str(releases))

    def tick(cursor=None):
        return sensor_tick(instance, source, cursor)

    first = tick()
    assert [(r.partition_key, r.tags[CONTENT_RELEASE_TAG]) for r in first.run_requests] == [
        ("v0.21.0", "c-v1.1.0.tar.gz")]
    assert tick(first.cursor).run_requests == []
    (releases / "c-v1.2.0.tar.gz").write_bytes(b"")
    third = tick(first.cursor)
    assert [r.tags[CONTENT_RELEASE_TAG] for r in third.run_requests] == ["c-v1.2.0.tar.gz"]

    unreachable = ContentSource(source="git+file:///nonexistent/remote.git")
    skipped = sensor_tick(instance, unreachable)
    assert isinstance(skipped, dg.SkipReason) and "unreachable" in skipped.skip_message


def test_sample_knobs_are_run_config(data_dir):
    """sample_count / sample_seed in the run config win over the resource's (the environment's) values, are recorded
    in the lineage, and a count below one fails naming the field."""
    source = ContentSource(source="sample", sample_count=30, sample_seed=2)
    result = dg.materialize(
        [worksheet_dataset], partition_key=TAG, instance=instance_with_partitions(TAG),
        resources={"artifact_store": ArtifactStoreResource(data_dir=str(data_dir)), "content_source": source},
        run_config={"ops": {"worksheet_dataset": {"config": {"sample_count": 12, "sample_seed": 5}}}},
    )
    metadata = result.asset_materializations_for_node("worksheet_dataset")[0].metadata
    assert metadata["rows_train"].value + metadata["rows_validation"].value == 12
    assert metadata["content_version"].value.startswith("sample-g") and "-seed5-n12-" in metadata["content_version"].value
    lineage = json.loads((ArtifactStore(data_dir).asset_dir("worksheet_dataset", TAG) / "lineage.json").read_text())
    assert (lineage["sample_count"], lineage["split_seed"]) == (12, 5)
    refused = dg.materialize(
        [worksheet_dataset], partition_key=TAG, instance=instance_with_partitions(TAG), raise_on_error=False,
        resources={"artifact_store": ArtifactStoreResource(data_dir=str(data_dir)), "content_source": source},
        run_config={"ops": {"worksheet_dataset": {"config": {"sample_count": 0}}}},
    )
    [failure] = refused.get_step_failure_events()
    assert "config field 'sample_count'=0: expected at least 1 image" in failure.step_failure_data.error.message
