"""The gcp launcher's VM start script itself, run by bash on a stand-in VM (`kit/cos_vm.py`): its own curl requests
answered by the metadata server, Secret Manager and Compute Engine stand-ins and the GCS emulator, docker replaced
by a local process. A step runs through it end to end; an image docker cannot pull, or a container the daemon
refuses to start (``docker run`` exit 125), reaches the launcher at once through ``status.json`` with docker's own
words, instead of as a VM that went away without a result."""

from __future__ import annotations

import json
from pathlib import Path

from edugraph_pipeline.cloud.gcs import client as gcs_client
from edugraph_pipeline_tests.launchers.conftest import FAKE_HF_TOKEN, failure_text, materialize_with, user_messages
from edugraph_pipeline_tests.launchers.test_gcp_launcher import BUCKET, gcp, make_launcher  # noqa: F401 - fixture
from edugraph_pipeline_tests.launchers.test_gcp_preemption import FAST_RETRIES, metadata_of, retries

DENIED = ("denied: Permission 'artifactregistry.repositories.downloadArtifacts' denied on resource "
          "'projects/edugraph-test/locations/europe-west4/repositories/images' (or it may not exist)")


def cpu_launcher(gcp, data: Path):  # noqa: F811 - the fixture
    """GPUs are not simulated: a CPU machine (no driver install in the script)."""
    return make_launcher(gcp, data / "bin" / "stand_in_step.py", accelerator_count=0, machine_type="n2-standard-4")


def startup_log(run_id: str) -> str:
    client = gcs_client()
    (blob,) = [b for b in client.list_blobs(BUCKET, prefix=f"pipeline/runs/{run_id}/")
               if b.name.endswith("/logs/startup.log")]
    return blob.download_as_text()


def test_the_start_script_runs_the_step_and_deletes_its_vm(gcp, training_job):  # noqa: F811
    job, data = training_job
    gcp.run_scripts = True
    result, instance = materialize_with(cpu_launcher(gcp, data), job, data / "work")
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages) + "\n" + "\n".join(gcp.serial.values())
    assert metadata_of(result)["train_examples"] == 5
    assert metadata_of(result)["hf_token_present"] is True  # read from the Secret Manager stand-in by the script
    assert json.loads((Path(job.output_dir) / "adapter" / "adapter_config.json").read_text())["examples"] == 5
    for vm in gcp.vm_threads:  # the launcher is done once the status is in; the script still ends its VM
        vm.join(timeout=60)
    ((name, serial),) = gcp.serial.items()
    assert "edugraph: step exited with status 0" in serial
    # the script deleted its own VM (and uploaded its log first); the launcher's delete found it gone
    deletes = [r for r in gcp.requests if r["method"] == "DELETE"]
    assert len(deletes) == 2 and gcp.instances[name]["status"] == "DELETED"
    log = startup_log(result.run_id)
    assert "edugraph: pulling europe-west4-docker.pkg.dev/edugraph-test/images/edugraph-trainer:1.2.3" in log
    assert FAKE_HF_TOKEN not in log and FAKE_HF_TOKEN not in serial


def test_an_image_docker_cannot_pull_fails_at_once_with_dockers_reason(gcp, training_job):  # noqa: F811
    job, data = training_job
    gcp.run_scripts, gcp.pull_error = True, DENIED
    launcher = cpu_launcher(gcp, data)
    result, instance = materialize_with(launcher, job, data / "work", retry_policy=FAST_RETRIES)
    assert not result.success
    assert retries(result) == 0 and len(gcp.inserted()) == 1
    text = failure_text(result)
    assert f"exit code 97 docker pull {launcher.image} failed: Error response from daemon: {DENIED}" in text
    assert not any("stand-in step" in (m or "") for m in user_messages(instance, result.run_id))  # nothing ran
    assert [i["status"] for i in gcp.instances.values()] == ["DELETED"]


def test_a_container_the_daemon_refuses_fails_at_once_with_its_exit(gcp, training_job):  # noqa: F811
    job, data = training_job
    gcp.run_scripts = True
    gcp.docker_run_exit, gcp.docker_run_error = 125, 'could not select device driver "" with capabilities: [[gpu]]'
    result, _ = materialize_with(cpu_launcher(gcp, data), job, data / "work", retry_policy=FAST_RETRIES)
    assert not result.success
    assert retries(result) == 0 and len(gcp.inserted()) == 1
    assert ("exit code 125 docker run exited 125: the docker daemon refused to start the training container: docker: "
            'Error response from daemon: could not select device driver "" with capabilities: [[gpu]]') in (
        failure_text(result))
