"""The whole DAG on the tiny profile, offline, on the CPU, launched as the daily schedule launches it
(`newest_release_schedule`'s tick -> `full_pipeline_job`): release -> datasets -> adapters -> merged model ->
evaluation gate -> Hub publication (a local Hub speaking the real API) -> lineage."""

import json
import shutil

import dagster as dg
import pytest
from datasets import load_from_disk

from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.pipeline.jobs import full_pipeline_job
from edugraph_pipeline.defs.pipeline.schedules import newest_release_schedule
from edugraph_pipeline.lineage import lineage, render
from edugraph_pipeline.storage.layout import model_version
from edugraph_pipeline_tests.conftest import PIPELINE_ASSETS, TOKEN, dag_resources

TAG = "v0.21.0"
REPO = "edugraph/worksheet-labeller"
KNOWLEDGE_REPO, WORKSHEETS_REPO = "edugraph/edugraph-knowledge", "edugraph/edugraph-worksheets"
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
    return dag_resources(
        tmp_path, ontology_remote, hub, sample_count=48,
        repo_id=REPO, knowledge_repo=KNOWLEDGE_REPO, worksheets_repo=WORKSHEETS_REPO,
    )


def materialized(result) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def test_full_pipeline_job_on_the_tiny_profile(resources, instance, hub, capsys):
    assets = PIPELINE_ASSETS
    store = resources["artifact_store"].store()
    assert dg.materialize(assets, selection=["base_model"], resources=resources, instance=instance).success
    instance.add_dynamic_partitions(ontology_partitions.name, ["v0.20.5", TAG])

    # The schedule's tick asks for the newest release; full_pipeline_job runs it. The production gate rejects an
    # untrained-in-test-mode model: publication of the model in the same run is skipped...
    request = newest_release_schedule(dg.build_schedule_context(instance=instance))
    assert request.partition_key == TAG
    job = dg.Definitions(assets=assets, jobs=[full_pipeline_job], resources=resources).resolve_job_def(
        "full_pipeline_job"
    )
    strict = job.execute_in_process(partition_key=request.partition_key, run_config=gate("production"),
                                    instance=instance, tags=request.tags, raise_on_error=False)
    assert instance.get_run_by_id(strict.run_id).tags["edugraph/gpu"] == "training"
    [check] = [c for c in strict.get_asset_check_evaluations() if c.check_name == "evaluation_gate"]
    assert not check.passed
    assert materialized(strict) == set(PIPELINE) - {"hf_publication"} | {
        "knowledge_dataset_publication", "worksheet_dataset_publication"}
    assert hub.head(KNOWLEDGE_REPO, repo_type="dataset") is not None
    assert hub.head(WORKSHEETS_REPO, repo_type="dataset") is not None
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
    validation_rows = len(load_from_disk(str(store.asset_dir("worksheet_dataset", TAG) / "dataset"))["validation"])
    assert evaluation["n"] == validation_rows > 0
    assert round(evaluation["exact_match"] * validation_rows) == pytest.approx(evaluation["exact_match"] * validation_rows)
    assert "baseline_exact_match" in evaluation
    # The evaluation is bound to the exact merged model: its content hash, which is merged_model's data version.
    [merged] = strict.asset_materializations_for_node("merged_model")
    assert merged.tags["dagster/data_version"] == evaluation["model_version"] == model_version(
        store.current("merged_model") / "model") == merged.metadata["model_sha256"].value
    [published] = ok.asset_materializations_for_node("hf_publication")
    commit = published.metadata["commit_id"].value
    assert hub.head(REPO) == commit
    commits = hub.commit_count(REPO)
    files = hub.files(REPO)
    assert {"README.md", "config.json", "model.safetensors", "ontology.json"} <= set(files)
    card = files["README.md"].decode()
    assert TAG in card and "base_model:" in card and evaluation["model_version"] in files["edugraph_lineage.json"].decode()
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

    # A re-merged, changed model is not published on the strength of the evaluated model's pass.
    evaluated = store.current("merged_model") / "model"
    with store.publish("merged_model", None, store.lineage("merged_model")) as staging:
        shutil.copytree(evaluated, staging / "model")
        config = json.loads((staging / "model" / "config.json").read_text())
        (staging / "model" / "config.json").write_text(json.dumps({**config, "edugraph_remerged": True}))
    refused = dg.materialize(assets, selection=["hf_publication"], resources=resources, instance=instance,
                             raise_on_error=False)
    assert any("was not evaluated" in m for m in failure_messages(refused))
    assert hub.commit_count(REPO) == commits
