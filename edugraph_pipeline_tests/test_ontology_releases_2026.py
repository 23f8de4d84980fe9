"""Issue 22 end to end: a remote holding v0.21.0 and the 2026 ontology tagged v0.26.0 (why that tag: see
`ontology_2026`), materialized through `ontology_release` and `knowledge_dataset`."""

import json

import dagster as dg
import pytest

from edugraph_pipeline.defs.ontology.assets import knowledge_dataset, ontology_release
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.ontology.model import PART_OF_HIERARCHY, SPECIALIZATION_AND_COMPOSITION
from edugraph_pipeline.storage.layout import load_ontology
from edugraph_pipeline_tests.conftest import skip_or_fail
from edugraph_pipeline_tests.kit.remotes import SHARED_RELEASES, commit_release, init_repo, shared_release_files
from edugraph_pipeline_tests.ontology_2026 import TAG_2026, load_ontology_2026, ontology_2026_files

CHECKS = ["answers_name_existing_concepts", "hierarchy_present", "no_duplicate_questions"]


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    files_2026 = ontology_2026_files()
    if not SHARED_RELEASES.is_dir():
        skip_or_fail(f"reference data {SHARED_RELEASES} is absent (see ../shared/README.md)")
    root = tmp_path_factory.mktemp("remote-2026")
    repo = init_repo(root / "edugraph-ontology")
    commit_release(repo, "v0.21.0", shared_release_files("v0.21.0"))
    commit_release(repo, TAG_2026, files_2026)
    return {
        "artifact_store": ArtifactStoreResource(data_dir=str(root / "out")),
        "ontology_repository": OntologyRepository(remote=str(root / "edugraph-ontology"), cache_dir=str(root / "cache")),
    }


@pytest.fixture(scope="module")
def results(resources):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ontology_partitions.name, ["v0.21.0", TAG_2026])
        return {
            tag: dg.materialize([ontology_release, knowledge_dataset], partition_key=tag, resources=resources, instance=instance)
            for tag in ("v0.21.0", TAG_2026)
        }


def metadata_of(result, asset):
    [event] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def test_the_2026_release_is_read_with_specialization_composition_and_eligibility(results, resources):
    release = metadata_of(results[TAG_2026], "ontology_release")
    assert release["reading"] == SPECIALIZATION_AND_COMPOSITION
    assert (release["num_area"], release["num_scope"], release["num_ability"]) == (283, 352, 129)
    assert (release["eligible_area"], release["eligible_scope"], release["eligible_ability"]) == (231, 331, 116)
    assert release["num_eligible_labels"] == 678 and len(release["organizational_labels"]) == 86
    assert release["hierarchy_edges"] == 408  # the specialization facts, no longer the 340 partOf ones
    assert release["relations"]["partOf"] == 340 and release["relations"]["specializes"] == 408
    assert release["source_files"] == ["core-abilities.ttl", "core-areas-math.ttl", "core-schema.ttl", "core-scopes-math.ttl"]

    store = resources["artifact_store"].store()
    lineage = store.lineage("ontology_release", TAG_2026)
    stored = load_ontology(store, TAG_2026)
    assert lineage["ontology_sha256"] == release["ontology_sha256"] == stored.content_sha256()
    assert lineage["ontology_sha256"] == load_ontology_2026().content_sha256()
    assert lineage["reading"] == SPECIALIZATION_AND_COMPOSITION
    # What parts 3-4 read from a model's ontology.json: the eligible set and the compatibility rule.
    assert "CircularShapes" not in stored.eligible_labels("Area") and stored.is_eligible("Circle")
    [conflict] = stored.incompatible_pairs(["MultiplesOf10", "OddNumbers"])
    assert conflict.contradiction == ("EvenNumbers", "OddNumbers")


def test_the_2026_knowledge_dataset_has_the_new_kinds_and_passes_its_checks(results, resources):
    knowledge = metadata_of(results[TAG_2026], "knowledge_dataset")
    assert knowledge["num_rows"] == 5166
    assert (knowledge["rows_parent"], knowledge["rows_part_of"], knowledge["rows_parts"]) == (406, 340, 86)
    assert (knowledge["rows_eligibility"], knowledge["rows_examples"], knowledge["rows_logic"]) == (764, 400, 67)
    assert (knowledge["rows_incompatible"], knowledge["rows_compatibility"]) == (40, 146)
    checks = results[TAG_2026].get_asset_check_evaluations()
    assert sorted(check.check_name for check in checks if check.passed) == CHECKS
    store = resources["artifact_store"].store()
    lineage = store.lineage("knowledge_dataset", TAG_2026)
    assert lineage["ontology_sha256"] == store.lineage("ontology_release", TAG_2026)["ontology_sha256"]


def test_the_old_release_beside_it_keeps_its_reading(results, resources):
    release = metadata_of(results["v0.21.0"], "ontology_release")
    assert release["reading"] == PART_OF_HIERARCHY
    assert release["num_eligible_labels"] == 729 and release["organizational_labels"] == []
    assert release["hierarchy_edges"] == 710
    knowledge = metadata_of(results["v0.21.0"], "knowledge_dataset")
    assert knowledge["num_rows"] == 4385 and knowledge["rows_part_of"] == knowledge["rows_eligibility"] == 0
    checks = results["v0.21.0"].get_asset_check_evaluations()
    assert sorted(check.check_name for check in checks if check.passed) == CHECKS
    saved = json.loads((resources["artifact_store"].store().asset_dir("ontology_release", "v0.21.0") / "ontology.json").read_text())
    assert saved["format"] == 2 and saved["reading"] == PART_OF_HIERARCHY
