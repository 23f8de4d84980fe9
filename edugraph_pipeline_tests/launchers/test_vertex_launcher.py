"""VertexLauncher with the real google-cloud-aiplatform client (REST transport) against a local Vertex AI stand-in
that runs the CustomJob's container command locally, and the GCS emulator: the job's request, a worker restart
mid-run resuming from the synced checkpoint, a job Vertex found no machine for retried by Dagster, a step error or
an out-of-memory neither restarted by Vertex nor retried, and a job that failed before the step reported (an image
Vertex could not pull) failing at once with Vertex's reason."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.defs.training.launchers import REMOTE_MODULE, LocalLauncher, VertexLauncher
from edugraph_pipeline.defs.training.launchers.retry import PREEMPTION_RETRY_CEILING
from edugraph_pipeline_tests.kit.gcp import StorageEmulator
from edugraph_pipeline_tests.kit.vertex import FakeVertex
from edugraph_pipeline_tests.launchers.conftest import (
    RESUMABLE_STEP,
    failure_text,
    make_step_fail,
    make_step_run_out_of_memory,
    materialize_with,
    stand_in_job,
    user_messages,
)
from edugraph_pipeline_tests.launchers.test_gcp_preemption import metadata_of, regression_dataset, retries

BUCKET = "edugraph-vertex-bucket"
FAST_RETRIES = dg.RetryPolicy(max_retries=PREEMPTION_RETRY_CEILING)


@pytest.fixture
def vertex(tmp_path, monkeypatch):
    with StorageEmulator(BUCKET) as storage:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.host)
        with FakeVertex(tmp_path / "worker-disks") as fake:
            fake.emulator_host = storage.host
            yield fake


def make_launcher(fake: FakeVertex, step: Path, **overrides) -> VertexLauncher:
    return VertexLauncher(
        project="edugraph-test",
        region="europe-west4",
        bucket=BUCKET,
        prefix="pipeline",
        image="europe-west4-docker.pkg.dev/edugraph-test/images/edugraph-trainer:1.2.3",
        service_account="trainer@edugraph-test.iam.gserviceaccount.com",
        python=sys.executable,
        command=[sys.executable, str(step)],
        poll_interval_s=0.2,
        message_interval_s=0.5,
        endpoint=fake.endpoint,
        max_preemptions=5,
        **overrides,
    )


def test_vertex_worker_restart_resumes_from_the_synced_checkpoint(vertex, tmp_path):
    reference_data = tmp_path / "reference"
    regression_dataset(reference_data)
    reference_job = stand_in_job(reference_data, max_steps=8, save_steps=2)
    reference, _ = materialize_with(LocalLauncher(command=[sys.executable, str(RESUMABLE_STEP)]), reference_job,
                                    reference_data / "run")
    assert reference.success
    reference_weights = json.loads((Path(reference_job.output_dir) / "adapter" / "weights.json").read_text())

    data = tmp_path / "data"
    regression_dataset(data)
    job = stand_in_job(data, max_steps=8, save_steps=2)
    vertex.restart_after_checkpoints = 2
    launcher = make_launcher(vertex, RESUMABLE_STEP, env={"EDUGRAPH_STAND_IN_STEP_SECONDS": "0.4"})
    result, instance = materialize_with(launcher, job, data / "run", retry_policy=FAST_RETRIES, identity="b" * 64)
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages)
    assert retries(result) == 0  # Vertex restarted the worker inside the job

    ((name, entry),) = vertex.jobs.items()
    assert len(entry["workers"]) == 2
    spec = entry["job"].job_spec
    assert spec.scheduling.strategy.name == "SPOT"
    assert spec.scheduling.restart_job_on_worker_restart is True
    (pool,) = spec.worker_pool_specs
    assert (pool.machine_spec.machine_type, pool.machine_spec.accelerator_type.name,
            pool.machine_spec.accelerator_count) == ("g2-standard-8", "NVIDIA_L4", 1)
    assert pool.container_spec.image_uri == launcher.image
    assert list(pool.container_spec.command) == [sys.executable, "-m", REMOTE_MODULE, "--message-interval", "0.5", "--",
                                                 sys.executable, str(RESUMABLE_STEP)]
    assert spec.service_account == "trainer@edugraph-test.iam.gserviceaccount.com"

    # the restarted worker restored checkpoint-4 and its Pipes messages reached the run after the first worker's
    assert any(f"resumed from checkpoint-4 (restored from gs://{BUCKET}/pipeline/work/{'b' * 32}/checkpoints)" in m
               for m in messages)
    metadata = metadata_of(result)
    assert (metadata["global_step"], metadata["resumed_from_step"]) == (8, 4)
    weights = json.loads((Path(job.output_dir) / "adapter" / "weights.json").read_text())
    for key, values in weights.items():
        assert values == pytest.approx(reference_weights[key], abs=1e-6), key
    assert (metadata["vertex_machines"], metadata["vertex_preemptions"], metadata["vertex_zones"]) == (1, 0, "europe-west4")
    assert metadata["vertex_gpu_hours"] > 0


def test_vertex_stockout_is_retried(vertex, training_job):
    """Told by its message (Vertex does not always set RESOURCE_EXHAUSTED; `fail_without_result` below does)."""
    job, data = training_job
    code, message = 0, "The replica workerpool0-0 was preempted and could not be placed again: STOCKOUT."
    vertex.job_errors = [(code, message)]
    result, instance = materialize_with(make_launcher(vertex, data / "bin" / "stand_in_step.py"), job, data / "work",
                                        retry_policy=FAST_RETRIES)
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages)
    assert retries(result) == 1
    assert len(vertex.jobs) == 2
    assert any(f"ended JOB_STATE_FAILED without a step result ({message}, code {code}): preemption 1 of 5" in m
               for m in messages)
    metadata = metadata_of(result)
    assert (metadata["vertex_preemptions"], metadata["vertex_machines"]) == (1, 2)
    assert json.loads((Path(job.output_dir) / "adapter" / "adapter_config.json").read_text())["examples"] == 5


def test_vertex_job_that_never_reported_is_retried(vertex, training_job):
    job, data = training_job
    vertex.fail_without_result = 1
    result, instance = materialize_with(make_launcher(vertex, data / "bin" / "stand_in_step.py"), job, data / "work",
                                        retry_policy=FAST_RETRIES)
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages)
    assert retries(result) == 1
    assert len(vertex.jobs) == 2
    assert any("ended JOB_STATE_FAILED without a step result (Resources are insufficient in region: us-central1 "
               "(spot capacity)., code 8): preemption 1 of 5" in m for m in messages)
    metadata = metadata_of(result)
    assert (metadata["vertex_preemptions"], metadata["vertex_machines"]) == (1, 2)
    assert json.loads((Path(job.output_dir) / "adapter" / "adapter_config.json").read_text())["examples"] == 5


@pytest.mark.parametrize(("spoil", "reason"), [
    (make_step_fail, "the step exited 1: RuntimeError: stand-in training diverged"),
    (make_step_run_out_of_memory, "the step exited 1: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB"),
])
def test_vertex_step_error_is_not_retried(vertex, training_job, spoil, reason):
    job, data = training_job
    spoil(job)
    result, _ = materialize_with(make_launcher(vertex, data / "bin" / "stand_in_step.py"), job, data / "work",
                                 retry_policy=FAST_RETRIES)
    assert not result.success
    assert retries(result) == 0 and len(vertex.jobs) == 1
    # the wrapper reported the step's exit in status.json and exited 0: Vertex restarted nothing, the job succeeded
    ((_, entry),) = vertex.jobs.items()
    assert len(entry["workers"]) == 1
    assert entry["job"].state.name == "JOB_STATE_SUCCEEDED"
    text = failure_text(result)
    assert f"JOB_STATE_SUCCEEDED, exit code 1 {reason}" in text
    if spoil is make_step_fail:
        assert "STAND-IN FAILURE: the loss exploded at step 3" in text  # the step log's tail


def test_vertex_job_that_failed_before_the_step_fails_at_once(vertex, training_job):
    job, data = training_job
    denied = ("Unable to pull europe-west4-docker.pkg.dev/edugraph-test/images/edugraph-trainer:1.2.3: Permission "
              "'artifactregistry.repositories.downloadArtifacts' denied")
    vertex.job_errors = [(9, denied)]  # FAILED_PRECONDITION
    result, instance = materialize_with(make_launcher(vertex, data / "bin" / "stand_in_step.py"), job, data / "work",
                                        retry_policy=FAST_RETRIES)
    assert not result.success
    assert retries(result) == 0 and len(vertex.jobs) == 1
    assert f"JOB_STATE_FAILED, ended JOB_STATE_FAILED before the step reported ({denied}, code 9)" in failure_text(result)


def test_a_gpu_without_bf16_is_refused_before_a_job_is_created(vertex, training_job):
    job, data = training_job
    launcher = make_launcher(vertex, data / "bin" / "stand_in_step.py", accelerator_type="NVIDIA_TESLA_T4",
                             machine_type="n1-standard-8")
    result, _ = materialize_with(launcher, job, data / "work", retry_policy=FAST_RETRIES)
    assert not result.success and retries(result) == 0
    assert not vertex.requests  # nothing created, nothing paid for
    assert "EDUGRAPH_GCP_ACCELERATOR=NVIDIA_TESLA_T4: this GPU has no bf16" in failure_text(result)
