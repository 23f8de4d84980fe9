import json

import dagster as dg
import pytest

from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.ontology.sensors import ontology_release_sensor, plan_release_requests
from edugraph_pipeline.defs.partitions import ontology_partitions, release_to_learn_from
from edugraph_pipeline.defs.pipeline.schedules import newest_release, newest_release_schedule
from edugraph_pipeline.releases import ReleaseTag
from edugraph_pipeline_tests.kit.remotes import commit_release, init_repo, shared_release_files


def evaluate_sensor(instance, remote, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"ontology_repository": OntologyRepository(remote=str(remote), cache_dir="unused")},
    )
    return ontology_release_sensor(context), context


def test_sensor_requests_each_release_once_and_follows_new_tags(tmp_path, instance, shared_releases):
    repo = init_repo(tmp_path / "remote")
    commit_release(repo, "v0.20.5", shared_release_files("v0.20.5"))
    commit_release(repo, "v0.21.0", shared_release_files("v0.21.0"), annotated=True)

    first, _ = evaluate_sensor(instance, repo.working_tree_dir)
    assert [request.partition_key for request in first.run_requests] == ["v0.20.5", "v0.21.0"]
    [add] = first.dynamic_partitions_requests
    assert add.partitions_def_name == ontology_partitions.name and list(add.partition_keys) == ["v0.20.5", "v0.21.0"]
    instance.add_dynamic_partitions(ontology_partitions.name, list(add.partition_keys))

    again, _ = evaluate_sensor(instance, repo.working_tree_dir, cursor=first.cursor)
    assert isinstance(again, dg.SkipReason) and "no new release among 2 tags" in again.skip_message

    commit_release(repo, "v0.22.0", shared_release_files("v0.21.0"))
    newer, _ = evaluate_sensor(instance, repo.working_tree_dir, cursor=first.cursor)
    assert [request.partition_key for request in newer.run_requests] == ["v0.22.0"]
    assert list(newer.dynamic_partitions_requests[0].partition_keys) == ["v0.22.0"]
    assert set(json.loads(newer.cursor)) == {"v0.20.5", "v0.21.0", "v0.22.0"}


def test_sensor_logs_an_unreachable_remote_instead_of_failing(tmp_path, instance):
    result, _ = evaluate_sensor(instance, tmp_path / "gone", cursor='{"v0.1.0": "abc"}')
    assert isinstance(result, dg.SkipReason)
    assert "ontology remote unreachable" in result.skip_message


def test_a_moved_tag_is_requested_again_under_a_new_run_key():
    tags = [ReleaseTag("v1.0.0", "a" * 40)]
    fresh, cursor = plan_release_requests(tags, None)
    assert fresh == tags
    assert plan_release_requests(tags, cursor)[0] == []
    moved = [ReleaseTag("v1.0.0", "b" * 40)]
    assert plan_release_requests(moved, cursor)[0] == moved


def test_schedule_rebuilds_the_newest_release_once_per_release(instance):
    context = dg.build_schedule_context(instance=instance)
    assert isinstance(newest_release_schedule(context), dg.SkipReason)
    instance.add_dynamic_partitions(ontology_partitions.name, ["v0.9.6", "v0.21.0", "v0.10.0"])
    request = newest_release_schedule(context)
    assert request.partition_key == "v0.21.0" and request.run_key == "newest-v0.21.0"
    assert newest_release(["v0.2.0", "v0.10.0", "not-a-tag"]) == "v0.10.0"


def test_models_learn_from_the_newest_release_that_has_content(instance, tmp_path):
    from edugraph_pipeline.defs.training.assets import has_artifact
    from edugraph_pipeline.storage import ArtifactStore

    store = ArtifactStore(tmp_path / "data")
    instance.add_dynamic_partitions(ontology_partitions.name, ["v0.20.0", "v0.21.0", "v0.30.0"])

    def learn_from() -> str:
        return release_to_learn_from(instance, lambda tag: has_artifact(store, "worksheet_dataset", tag), "v0.30.0")

    assert learn_from() == "v0.30.0"  # no content anywhere yet: the newest release (stage 1 needs none)
    for tag in ("v0.20.0", "v0.21.0"):
        with store.publish("worksheet_dataset", tag, {"ontology_version": tag}):
            pass
    assert learn_from() == "v0.21.0"  # v0.30.0 has no content (its -NN release is not out): the newest that has
    with store.publish("worksheet_dataset", "v0.30.0", {"ontology_version": "v0.30.0"}):
        pass
    assert learn_from() == "v0.30.0"


def test_lineage_follows_the_exact_upstream_materialization(pipeline_resources, instance, capsys):
    from edugraph_pipeline.defs.ontology.assets import knowledge_dataset, ontology_release
    from edugraph_pipeline.lineage import lineage, render

    instance.add_dynamic_partitions(ontology_partitions.name, ["v0.4.0", "v0.21.0"])
    for tag in ("v0.4.0", "v0.21.0"):
        dg.materialize([ontology_release, knowledge_dataset], partition_key=tag, resources=pipeline_resources, instance=instance)

    node = lineage(instance, "knowledge_dataset", "v0.4.0")
    assert node.partition == "v0.4.0" and node.facts["ontology_version"] == "v0.4.0"
    [parent] = node.parents
    assert parent.asset == "ontology_release" and parent.partition == "v0.4.0"
    assert parent.facts["source_commit"] == node.facts["source_commit"]
    latest = lineage(instance, "knowledge_dataset")
    assert latest.partition == "v0.21.0"
    text = render(latest)
    assert "└─ ontology_release [v0.21.0]" in text and "ontology_version: v0.21.0" in text
    with pytest.raises(LookupError, match="no materialization of hf_publication"):
        lineage(instance, "hf_publication")
