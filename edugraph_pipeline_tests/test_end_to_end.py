"""The whole DAG on the tiny profile, offline, on the CPU: release -> datasets -> adapters -> merged model ->
evaluation gate -> Hub publication (a local Hub speaking the real API) -> lineage."""

import json

import dagster as dg
import pytest

from edugraph_pipeline.definitions import PIPELINE_ASSETS
from edugraph_pipeline.lineage import lineage, render
from edugraph_pipeline.partitions import ontology_partitions
from edugraph_pipeline.resources import ArtifactStoreResource, HubPublisher, OntologyRepository
from edugraph_pipeline.training.launchers import LocalLauncher
from edugraph_pipeline.worksheets.resources import ContentSource
from edugraph_pipeline_tests.conftest import TOKEN

TAG = "v0.21.0"
REPO = "edugraph/worksheet-labeller"
PIPELINE = [
    "ontology_release", "knowledge_dataset", "worksheet_dataset", "knowledge_adapter", "trained_adapter",
    "merged_model", "model_evaluation", "hf_publication",
]


def gate(profile, **thresholds):
    return {"ops": {"model_evaluation": {"config": {"gate_profile": profile, "thresholds": thresholds, "batch_size": 8}}}}


def failure_messages(result):
    return [event.step_failure_data.error.message for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]


@pytest.fixture
def resources(tmp_path, ontology_remote, hub, monkeypatch):
    monkeypatch.setenv("EDUGRAPH_MODEL", "tiny")
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "test")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "ontology_repository": OntologyRepository(remote=str(ontology_remote), cache_dir=str(tmp_path / "cache")),
        "content_source": ContentSource(source="sample", sample_count=48, sample_seed=3),
        "training_launcher": LocalLauncher(),
        "hub": HubPublisher(repo_id=REPO, endpoint=hub.endpoint, token=dg.EnvVar("HF_TOKEN")),
    }


def test_full_pipeline_on_the_tiny_profile(resources, instance, hub, capsys):
    assets = PIPELINE_ASSETS
    assert dg.materialize(assets, selection=["base_model"], resources=resources, instance=instance).success
    instance.add_dynamic_partitions(ontology_partitions.name, [TAG])

    # The production gate rejects an untrained-in-test-mode model: publication in the same run is skipped...
    strict = dg.materialize(assets, selection=PIPELINE, partition_key=TAG, resources=resources, instance=instance,
                            run_config=gate("production"), raise_on_error=False)
    [check] = [c for c in strict.get_asset_check_evaluations() if c.check_name == "evaluation_gate"]
    assert not check.passed
    assert "hf_publication" not in {e.asset_key.to_user_string() for e in strict.get_asset_materialization_events()}
    # ...and a later run of publication alone refuses too.
    alone = dg.materialize(assets, selection=["hf_publication"], resources=resources, instance=instance,
                           raise_on_error=False)
    assert any("failed its evaluation gate, not publishing" in m for m in failure_messages(alone))
    assert hub.head(REPO) is None

    # With the gate relaxed, the model is published with its lineage card.
    relaxed = gate("tiny", min_json_valid_rate=0.0, min_labels_valid_rate=0.0, min_baseline_margin=-1.0)
    ok = dg.materialize(assets, selection=["model_evaluation", "hf_publication"],
                        resources=resources, instance=instance, run_config=relaxed)
    evaluation = {k: v.value for k, v in ok.asset_materializations_for_node("model_evaluation")[0].metadata.items()}
    assert 0.0 <= evaluation["exact_match"] <= 1.0 and "baseline_exact_match" in evaluation
    [published] = ok.asset_materializations_for_node("hf_publication")
    commit = published.metadata["commit_id"].value
    assert hub.head(REPO) == commit
    commits = hub.commit_count(REPO)
    files = hub.files(REPO)
    assert {"README.md", "config.json", "model.safetensors", "ontology.json"} <= set(files)
    card = files["README.md"].decode()
    assert TAG in card and "base_model:" in card
    assert TOKEN not in json.dumps({k: str(v.value) for k, v in published.metadata.items()})

    # Republishing unchanged content creates no commit.
    again = dg.materialize(assets, selection=["hf_publication"], resources=resources, instance=instance)
    assert not again.asset_materializations_for_node("hf_publication")[0].metadata["created_commit"].value
    assert hub.commit_count(REPO) == commits and hub.head(REPO) == commit

    # Rebuilding when nothing upstream changed retrains, merges and republishes nothing.
    adapter = resources["artifact_store"].store().asset_dir("trained_adapter") / "adapter" / "adapter_model.safetensors"
    trained_at = adapter.stat().st_mtime_ns
    rebuild = dg.materialize(assets, selection=["base_model", "knowledge_adapter", "trained_adapter", "merged_model",
                                                "hf_publication"], resources=resources, instance=instance)
    for name in ("base_model", "knowledge_adapter", "trained_adapter", "merged_model"):
        assert rebuild.asset_materializations_for_node(name)[0].metadata["reused"].value, name
    assert adapter.stat().st_mtime_ns == trained_at
    assert not rebuild.asset_materializations_for_node("hf_publication")[0].metadata["created_commit"].value
    assert hub.commit_count(REPO) == commits

    # The lineage of the publication names the exact ontology release and content version.
    chain = lineage(instance, "hf_publication")
    assets_seen = {node.asset for node in chain.walk()}
    assert {"merged_model", "model_evaluation", "trained_adapter", "worksheet_dataset", "ontology_release"} <= assets_seen
    text = render(chain)
    assert f"ontology_version: {TAG}" in text
    worksheet = next(node for node in chain.walk() if node.asset == "worksheet_dataset")
    assert worksheet.facts["content_version"].startswith("sample-")
    assert worksheet.facts["content_version"] in text
