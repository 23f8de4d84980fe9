import json
from pathlib import Path

import dagster as dg
import datasets
import pytest

from edugraph_pipeline.defs.ontology.assets import knowledge_dataset, ontology_release
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.knowledge.qa import LABEL_ANSWER_KINDS
from edugraph_pipeline.storage import VERSIONS
from edugraph_pipeline_tests.kit.remotes import commit_release, init_repo, release_tags, shared_release_files

ASSETS = [ontology_release, knowledge_dataset]


def materialize(tag, resources, instance, raise_on_error=True):
    if tag not in instance.get_dynamic_partitions(ontology_partitions.name):
        instance.add_dynamic_partitions(ontology_partitions.name, [tag])
    return dg.materialize(ASSETS, partition_key=tag, resources=resources, instance=instance, raise_on_error=raise_on_error)


def metadata_of(result, asset):
    [event] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def test_release_and_knowledge_dataset_materialize(pipeline_resources, instance, ontology_remote):
    result = materialize("v0.21.0", pipeline_resources, instance)
    assert result.success

    release = metadata_of(result, "ontology_release")
    assert (release["num_area"], release["num_scope"], release["num_ability"]) == (278, 326, 125)
    assert release["ontology_version"] == "v0.21.0"
    assert len(release["source_commit"]) == 40

    knowledge = metadata_of(result, "knowledge_dataset")
    assert knowledge["num_rows"] == 4385  # 4,124 before issue 22; test_knowledge_qa explains the difference
    assert knowledge["rows_definition_to_label"] == 729
    assert knowledge["rows_parent"] == 708
    assert knowledge["source_commit"] == release["source_commit"]
    loaded = datasets.load_from_disk(knowledge["path"])
    assert loaded.num_rows == 4385
    assert set(loaded.column_names) == {"kind", "concept", "instruction", "output", "messages"}

    checks = result.get_asset_check_evaluations()
    assert sorted(check.check_name for check in checks if check.passed) == [
        "answers_name_existing_concepts",
        "hierarchy_present",
        "no_duplicate_questions",
    ]
    lineage = json.loads((pipeline_resources["artifact_store"].store().asset_dir("knowledge_dataset", "v0.21.0") / "lineage.json").read_text())
    assert lineage["source_commit"] == release["source_commit"] and lineage["ontology_version"] == "v0.21.0"


def test_backfill_over_every_release(pipeline_resources, instance):
    tags = release_tags()
    instance.add_dynamic_partitions(ontology_partitions.name, tags)
    rows = {}
    for tag in tags:
        result = materialize(tag, pipeline_resources, instance)
        rows[tag] = metadata_of(result, "knowledge_dataset")["num_rows"]
        assert metadata_of(result, "knowledge_dataset")["rows_parent"] > 0, tag
    assert len(rows) == 52
    assert rows["v0.1.0"] == 1459 and rows["v0.21.0"] == 4385
    store = pipeline_resources["artifact_store"].store()
    assert sorted(path.name for path in (store.root / "knowledge_dataset").iterdir() if path.name != VERSIONS) == sorted(tags)


@pytest.fixture
def broken_remote(tmp_path, shared_releases):
    """A remote whose v1.0.0 is good; tests then move the tag onto broken content."""
    repo = init_repo(tmp_path / "broken-remote")
    commit_release(repo, "v1.0.0", shared_release_files("v0.21.0"))
    return repo


def resources_for(remote, tmp_path):
    return {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "ontology_repository": OntologyRepository(remote=str(remote.working_tree_dir), cache_dir=str(tmp_path / "cache")),
    }


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [<!ENTITY leak SYSTEM "file:///etc/hostname">]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="x">&leak;</rdf:Description></rdf:RDF>"""


PREFIXES = b"""@prefix edu: <http://edugraph.io/edu#> .
@prefix : <http://edugraph.io/edu/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
"""
TWO_DIMENSIONS = PREFIXES + b':Counting a edu:Area, edu:Scope ; rdfs:isDefinedBy "Counting things." .\n'
HUGE_DEFINITION = PREFIXES + b':Counting a edu:Area ; rdfs:isDefinedBy "' + b"x" * 50 * 2**20 + b'" .\n'


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"core-areas-math.ttl": b"@prefix : <http://edugraph.io/edu/> .\n:A :b"}, "core-areas-math.ttl: invalid turtle"),
        ({"README.md": b"empty release"}, "release contains no ontology file"),
        ({"core-ontology-math.rdf": XXE}, "core-ontology-math.rdf: declares external entity 'leak'"),
        ({"core.ttl": TWO_DIMENSIONS}, "concept 'Counting' is typed both Area and Scope"),
        ({"core.ttl": HUGE_DEFINITION}, "the definition of concept 'Counting' has 52,428,800 characters"),
    ],
)
def test_bad_release_fails_clearly_and_keeps_the_earlier_materialization(broken_remote, tmp_path, instance, files, message):
    resources = resources_for(broken_remote, tmp_path)
    assert materialize("v1.0.0", resources, instance).success
    store = resources["artifact_store"].store()
    before = {path: path.read_bytes() for path in store.root.rglob("*") if path.is_file()}

    commit_release(broken_remote, "v1.0.0-broken", files)
    broken_remote.git.tag("-f", "v1.0.0", "HEAD")
    result = materialize("v1.0.0", resources, instance, raise_on_error=False)

    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert message in failure.step_failure_data.error.message
    after = {path: path.read_bytes() for path in store.root.rglob("*") if path.is_file()}
    assert after == before
    leftovers = (store.root / "ontology_release" / VERSIONS / "v1.0.0").iterdir()  # no staging of the failed run
    assert {path.name for path in leftovers} == {store.current("ontology_release", "v1.0.0").name, ".commit.lock"}


def test_missing_tag_fails_with_the_known_releases(broken_remote, tmp_path, instance):
    result = materialize("v7.7.7", resources_for(broken_remote, tmp_path), instance, raise_on_error=False)
    assert not result.success
    [failure] = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "release v7.7.7 does not exist" in failure.step_failure_data.error.message
    assert "newest known: v1.0.0" in failure.step_failure_data.error.message


def test_knowledge_dataset_without_its_release_names_what_to_run(pipeline_resources, instance):
    instance.add_dynamic_partitions(ontology_partitions.name, ["v0.21.0"])
    result = dg.materialize([knowledge_dataset], partition_key="v0.21.0", resources=pipeline_resources, instance=instance, raise_on_error=False)
    [failure] = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "materialize ontology_release for partition v0.21.0 first" in failure.step_failure_data.error.message


def test_parsing_never_touches_the_network(pipeline_resources, instance, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access during ontology parsing")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert materialize("v0.4.0", pipeline_resources, instance).success


def test_a_symlinked_file_in_the_tag_is_refused_and_never_followed(broken_remote, tmp_path, instance):
    resources = resources_for(broken_remote, tmp_path)
    outside = tmp_path / "outside.ttl"
    outside.write_bytes(PREFIXES + b':Secret a edu:Area ; rdfs:isDefinedBy "read from outside the release" .\n')
    work = Path(broken_remote.working_tree_dir)
    (work / "core-areas-math.ttl").unlink()
    (work / "core-areas-math.ttl").symlink_to(outside)
    broken_remote.git.add("--all")
    broken_remote.git.commit("-m", "a link out of the release")
    broken_remote.git.tag("v1.1.0")
    result = materialize("v1.1.0", resources, instance, raise_on_error=False)
    [failure] = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "core-areas-math.ttl is a symbolic link" in failure.step_failure_data.error.message
    assert not (tmp_path / "out" / "ontology_release" / "v1.1.0").exists()


def test_a_cycle_in_the_hierarchy_ends_cleanly(broken_remote, tmp_path, instance):
    cyclic = PREFIXES + b"""
:Counting a edu:Area ; rdfs:isDefinedBy "Counting things." ; edu:partOf :Arithmetic .
:Arithmetic a edu:Area ; rdfs:isDefinedBy "Working with numbers." ; edu:partOf :Counting .
:Loop a edu:Area ; rdfs:isDefinedBy "Part of itself." ; edu:partOf :Loop .
:Small a edu:Scope ; rdfs:isDefinedBy "Numbers below ten." .
:Doing a edu:Ability ; rdfs:isDefinedBy "Carrying out a procedure." .
"""
    commit_release(broken_remote, "v1.2.0", {"core.ttl": cyclic})
    result = materialize("v1.2.0", resources_for(broken_remote, tmp_path), instance)
    knowledge = metadata_of(result, "knowledge_dataset")
    assert knowledge["rows_parent"] == 2  # Counting <-> Arithmetic; the self-loop is no parent
    store = resources_for(broken_remote, tmp_path)["artifact_store"].store()
    rows = datasets.load_from_disk(str(store.asset_dir("knowledge_dataset", "v1.2.0") / "dataset"))
    names = {"Counting", "Arithmetic", "Loop", "Small", "Doing"}
    labelled = [row for row in rows if row["kind"] in LABEL_ANSWER_KINDS]
    # 5 definition, 5 dimension, 2 parent and 2 children questions; no top level (the cycle has no root).
    assert len(labelled) == 14
    for row in labelled:
        assert {name for labels in json.loads(row["output"]).values() for name in labels} <= names, row
