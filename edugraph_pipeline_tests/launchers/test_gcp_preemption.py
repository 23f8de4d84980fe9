"""Spot preemption survived, against the GCS emulator and the Compute API stand-in: checkpoints synced to GCS, the
preempted VM's step retried by Dagster on a new VM that resumes, real failures not retried, zones tried in order,
and the preemption cap."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.cloud.gcs import client as gcs_client
from edugraph_pipeline.defs.training.launchers import LocalLauncher
from edugraph_pipeline.defs.training.launchers.retry import PREEMPTION_RETRY_CEILING
from edugraph_pipeline.training.checkpoint_sync import MARKER, CheckpointStore
from edugraph_pipeline_tests.launchers.conftest import (
    RESUMABLE_STEP,
    failure_text,
    make_step_fail,
    materialize_with,
    stand_in_job,
    user_messages,
)
from edugraph_pipeline_tests.launchers.test_gcp_launcher import BUCKET, gcp, make_launcher  # noqa: F401 - fixture

# Dagster's retries without the production policy's minutes of backoff (its ceiling, no delay).
FAST_RETRIES = dg.RetryPolicy(max_retries=PREEMPTION_RETRY_CEILING)


def regression_dataset(data: Path) -> None:
    rng = random.Random(7)
    folder = data / "datasets" / "worksheet-v1"
    folder.mkdir(parents=True)
    rows = []
    for _ in range(32):
        x = [rng.uniform(-1, 1) for _ in range(4)]
        rows.append({"x": x, "y": 0.5 * x[0] - 2 * x[1] + x[2] + 0.1 * x[3] + 0.3})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def metadata_of(result) -> dict:
    (materialization,) = result.asset_materializations_for_node("stand_in_adapter")
    return {k: v.value for k, v in materialization.metadata.items()}


def retries(result) -> int:
    return sum(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)


def test_preempted_vm_resumes_on_a_new_vm(gcp, tmp_path):  # noqa: F811 - the fixture
    # the reference: the same job, uninterrupted, as a local subprocess
    reference_data = tmp_path / "reference"
    regression_dataset(reference_data)
    reference_job = stand_in_job(reference_data, max_steps=8, save_steps=2)
    local = LocalLauncher(command=[sys.executable, str(RESUMABLE_STEP)])
    reference, _ = materialize_with(local, reference_job, reference_data / "run")
    assert reference.success
    reference_weights = json.loads((Path(reference_job.output_dir) / "adapter" / "weights.json").read_text())

    data = tmp_path / "data"
    regression_dataset(data)
    job = stand_in_job(data, max_steps=8, save_steps=2)
    gcp.preempt_vms, gcp.preempt_after_checkpoints = 1, 2
    launcher = make_launcher(gcp, RESUMABLE_STEP, env={"EDUGRAPH_STAND_IN_STEP_SECONDS": "0.4"}, max_preemptions=5)
    result, instance = materialize_with(launcher, job, data / "run", retry_policy=FAST_RETRIES, identity="a" * 64)
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages)
    assert retries(result) == 1

    first, second = (spec["name"] for spec in gcp.inserted())
    assert gcp.booted == [first, second]
    assert any(f"VM {first} in europe-west4-a was preempted (preemption 1 of 5)" in m for m in messages)
    assert any("resuming from checkpoint-4 after preemption 1 of 5" in m for m in messages)
    assert any(f"resumed from checkpoint-4 (restored from gs://{BUCKET}/pipeline/work/{'a' * 32}/checkpoints)" in m
               for m in messages)
    # the second VM finished the same 8 steps from step 4, to the weights of the uninterrupted run
    metadata = metadata_of(result)
    assert (metadata["global_step"], metadata["resumed_from_step"]) == (8, 4)
    assert metadata_of(reference)["global_step"] == 8
    weights = json.loads((Path(job.output_dir) / "adapter" / "weights.json").read_text())
    assert weights.keys() == reference_weights.keys()
    for name, values in weights.items():
        assert values == pytest.approx(reference_weights[name], abs=1e-6), name
    # what the run cost, across both VMs
    assert metadata["gcp_preemptions"] == 1
    assert metadata["gcp_machines"] == 2
    assert metadata["gcp_spot_machines"] == 2
    assert metadata["gcp_zones"] == "europe-west4-a"
    assert 0 < metadata["gcp_gpu_hours"] < 0.1
    # inputs uploaded once; every VM deleted (the preempted one by Compute Engine, the other by the launcher)
    assert sum(m.startswith(f"Staged {job.config.dataset_path} ") for m in messages) == 1
    assert sum(m.startswith("Inputs already staged") for m in messages) == 1
    assert {i["status"] for i in gcp.instances.values()} == {"DELETED"}
    assert gcp.deleted() == [first, second]  # the launcher tried both; the first was gone already


def test_half_uploaded_checkpoint_is_ignored(gcp, tmp_path):  # noqa: F811
    store = CheckpointStore(gcs_client(), BUCKET, "pipeline/work/job/checkpoints", keep=5)
    for step in (2, 4, 6):
        folder = tmp_path / "local" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(bytes([step]) * 100)
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    store.upload(tmp_path / "local" / "checkpoint-2")
    store.upload(tmp_path / "local" / "checkpoint-4")
    bucket = gcs_client().bucket(BUCKET)
    # checkpoint-4 lost a file (the VM went away while a later upload replaced it); checkpoint-6 has no marker yet
    bucket.blob("pipeline/work/job/checkpoints/checkpoint-4/model.safetensors").upload_from_string(b"\x04" * 10)
    bucket.blob("pipeline/work/job/checkpoints/checkpoint-6/model.safetensors").upload_from_string(b"\x06" * 100)
    assert [c.step for c in store.complete()] == [2]
    restored = store.restore(tmp_path / "vm" / "checkpoints")
    assert restored is not None and restored.step == 2
    folder = tmp_path / "vm" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2"]
    assert (folder / "checkpoint-2" / "model.safetensors").read_bytes() == bytes([2]) * 100
    assert not (folder / "checkpoint-2" / MARKER).exists()


def test_code_error_is_not_retried(gcp, training_job):  # noqa: F811
    job, data = training_job
    make_step_fail(job)
    launcher = make_launcher(gcp, data / "bin" / "stand_in_step.py")
    result, _ = materialize_with(launcher, job, data / "work", retry_policy=FAST_RETRIES)
    assert not result.success
    assert retries(result) == 0
    assert len(gcp.inserted()) == 1
    text = failure_text(result)
    assert "stand-in training diverged" in text and "STAND-IN FAILURE: the loss exploded at step 3" in text


def test_zone_exhaustion_moves_to_the_next_zone(gcp, training_job):  # noqa: F811
    job, data = training_job
    gcp.exhausted = {"europe-west4-a": "ZONE_RESOURCE_POOL_EXHAUSTED", "europe-west4-b": "QUOTA_EXCEEDED"}
    launcher = make_launcher(
        gcp, data / "bin" / "stand_in_step.py", zones="europe-west4-a, europe-west4-b,europe-west4-c"
    )
    result, instance = materialize_with(launcher, job, data / "work", retry_policy=FAST_RETRIES)
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages)
    assert retries(result) == 0
    assert any("Zone europe-west4-a cannot run the VM now (ZONE_RESOURCE_POOL_EXHAUSTED): trying europe-west4-b" in m
               for m in messages)
    assert any("Zone europe-west4-b cannot run the VM now (QUOTA_EXCEEDED): trying europe-west4-c" in m for m in messages)
    specs = gcp.inserted()
    assert [s["machineType"].split("/zones/")[1].split("/")[0] for s in specs] == [
        "europe-west4-a", "europe-west4-b", "europe-west4-c"]
    script = next(i["value"] for i in specs[-1]["metadata"]["items"] if i["key"] == "startup-script")
    assert "ZONE=europe-west4-c" in script  # the VM deletes itself in the zone it runs in
    assert sum(m.startswith("Staged ") for m in messages) == 1  # staged once, not per zone
    assert metadata_of(result)["gcp_zones"] == "europe-west4-c"
    assert [r["path"] for r in gcp.requests if r["method"] == "DELETE"] == [
        f"/projects/edugraph-test/zones/europe-west4-c/instances/{specs[-1]['name']}"]


def test_preemption_cap_and_on_demand_fallback(gcp, training_job):  # noqa: F811
    job, data = training_job
    gcp.preempt_vms, gcp.preempt_after_checkpoints = 3, 0  # preempted at boot
    launcher = make_launcher(gcp, data / "bin" / "stand_in_step.py", max_preemptions=2, on_demand_after=1)
    result, instance = materialize_with(launcher, job, data / "work", retry_policy=FAST_RETRIES)
    assert not result.success
    assert retries(result) == 2
    specs = gcp.inserted()
    assert [s["scheduling"].get("provisioningModel") for s in specs] == ["SPOT", None, None]
    assert "preemption 3 of 2): giving up (EDUGRAPH_GCP_MAX_PREEMPTIONS=2)" in failure_text(result)
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert any("starting from step 0 (no checkpoint was synced yet) after preemption 2 of 2" in m for m in messages)


def test_training_assets_retry_preemptions_with_backoff(monkeypatch):
    from edugraph_pipeline.defs.training.assets import base_model, knowledge_adapter, trained_adapter
    from edugraph_pipeline.defs.training.launchers import launcher_from_settings
    from edugraph_pipeline.defs.training.launchers.retry import PREEMPTION_RETRY_POLICY

    for asset in (base_model, knowledge_adapter, trained_adapter):
        assert asset.op.retry_policy == PREEMPTION_RETRY_POLICY
    assert PREEMPTION_RETRY_POLICY.max_retries == PREEMPTION_RETRY_CEILING
    assert [PREEMPTION_RETRY_POLICY.backoff, PREEMPTION_RETRY_POLICY.delay] == [dg.Backoff.LINEAR, 60]
    for name, value in (("EDUGRAPH_TRAINING_LAUNCHER", "gcp"), ("EDUGRAPH_GCP_PROJECT", "p"),
                        ("EDUGRAPH_GCS_BUCKET", "b")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EDUGRAPH_GCP_MAX_PREEMPTIONS", raising=False)
    assert launcher_from_settings().max_preemptions == 5  # the setting's default
    monkeypatch.setenv("EDUGRAPH_GCP_MAX_PREEMPTIONS", "21")
    with pytest.raises(ValueError, match="EDUGRAPH_GCP_MAX_PREEMPTIONS=21: expected 0 to 20"):
        launcher_from_settings()  # refused when the code location loads, not hours into a run


def test_no_capacity_anywhere_is_retried_then_given_up(gcp, training_job):  # noqa: F811
    job, data = training_job
    gcp.exhausted = {"europe-west4-a": "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}
    launcher = make_launcher(gcp, data / "bin" / "stand_in_step.py", max_preemptions=1)
    result, _ = materialize_with(launcher, job, data / "work", retry_policy=FAST_RETRIES)
    assert not result.success
    assert retries(result) == 1
    assert len(gcp.inserted()) == 2 and not gcp.booted
    assert "No zone of europe-west4-a has capacity or quota for 1x nvidia-l4 now (interruption 2 of 1): giving up" in (
        failure_text(result))
