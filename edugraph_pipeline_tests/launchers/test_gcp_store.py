"""The GCP and Vertex launchers on an artifact store in GCS (issue 15 item 2): the step reads its dataset from the store's
committed version (checked against the manifest) and writes the adapter straight into the publication's version
prefix; the launcher uploads no input and downloads no output, the asset's publication commits the manifest, a
fresh machine reads the artifact, and a failed step leaves the previous artifact current. GCS emulator + the
Compute / Vertex stand-ins that run the captured machine's command locally (`kit.gcp`, `kit.vertex`)."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.defs.training.launchers import TrainingLauncher
from edugraph_pipeline.storage import open_store
from edugraph_pipeline.training.job import TrainingJob
from edugraph_pipeline_tests.launchers import test_gcp_launcher, test_vertex_launcher
from edugraph_pipeline_tests.launchers.conftest import FAIL_MARKER, STAND_IN_STEP, stand_in_job, user_messages
from edugraph_pipeline_tests.launchers.test_gcp_launcher import gcp  # noqa: F401 - fixture
from edugraph_pipeline_tests.launchers.test_vertex_launcher import vertex  # noqa: F401 - fixture

ASSET = "trained_adapter"


@pytest.fixture(params=["gcp", "vertex"])
def cloud(request):
    """(launcher for a step file, the machines' disks, the bucket) of the Compute or the Vertex stand-in."""
    module = test_gcp_launcher if request.param == "gcp" else test_vertex_launcher
    fake = request.getfixturevalue(request.param)
    disks = fake.vm_root if request.param == "gcp" else fake.worker_root
    return (lambda step: module.make_launcher(fake, step)), disks, module.BUCKET


def publish_dataset(store, tag: str, *, failing: bool = False) -> None:
    with store.publish("worksheet_dataset", tag, {"tag": tag}) as staging:
        (staging / "dataset").mkdir()
        (staging / "dataset" / "train.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(5)))
        if failing:
            (staging / "dataset" / FAIL_MARKER).write_text("the data is bad\n")


def train(launcher: TrainingLauncher, url: str, cache: Path, tag: str):
    """What a training asset does: its job names the store's mirror paths; the publication is the output dir; the
    launcher is handed the store (which answers what in the bucket backs those paths)."""

    @dg.asset(name=ASSET)
    def trained(context: dg.AssetExecutionContext, launcher: TrainingLauncher) -> dg.MaterializeResult:
        store = open_store(url, cache_dir=cache)
        dataset = store.asset_dir("worksheet_dataset", tag) / "dataset"
        template = stand_in_job(cache)
        job = TrainingJob(stage="worksheet", mode="test", config=template.config.with_(dataset_path=str(dataset)),
                          log_every=1)
        with store.publish(ASSET, None, {"trained_on": tag}) as staging:
            placed = job.placed(output_dir=str(staging), work_dir=str(store.work_root / ASSET))
            reported = launcher.launch(context, job=placed, workdir=store.work_root / ASSET,
                                       store=store).get_materialize_result()
            result = json.loads((staging / "job_result.json").read_text())  # returned inline, not downloaded
        return dg.MaterializeResult(metadata={**reported.metadata, "result_examples": result["examples"]})

    instance = dg.DagsterInstance.ephemeral()
    return dg.materialize([trained], resources={"launcher": launcher}, instance=instance, raise_on_error=False), instance


def transfers_through_this_host(names: set[str]) -> set[str]:
    """Objects the launcher stages (inputs) or the step leaves for it to download (outputs)."""
    return {n for n in names if (n.startswith("pipeline/work/") and "/inputs/" in n)
            or (n.startswith("pipeline/runs/") and "/files/" in n)}


def test_the_step_reads_and_writes_the_store_itself(cloud, tmp_path):
    make, disks, bucket = cloud
    url = f"gs://{bucket}/pipeline"
    host = tmp_path / "dagster-host"
    store = open_store(url, cache_dir=host)
    publish_dataset(store, "v1")
    publish_dataset(store, "v2", failing=True)
    step = tmp_path / "bin" / "stand_in_step.py"
    step.parent.mkdir()
    shutil.copy(STAND_IN_STEP, step)
    launcher = make(step)
    client = store.bucket.client

    result, instance = train(launcher, url, host, "v1")
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages)
    names = {b.name for b in client.list_blobs(bucket)}
    assert transfers_through_this_host(names) == set()  # zero input uploads, zero output downloads
    assert any("committed by the publication, not downloaded" in m for m in messages)
    (materialization,) = result.asset_materializations_for_node(ASSET)
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert Path(metadata["dataset_path"]).is_relative_to(disks)  # read on the VM, from the bucket
    assert metadata["train_examples"] == metadata["result_examples"] == 5
    assert not (host / "artifacts" / ASSET / "latest").exists()  # the host holds no copy of the adapter

    # a fresh machine reads the artifact; the manifest covers the step's files and the publisher's lineage
    fresh = open_store(url, cache_dir=tmp_path / "fresh")
    folder = fresh.current(ASSET)
    assert json.loads((folder / "adapter" / "adapter_config.json").read_text()) == {"examples": 5, "first": '{"id": 0}'}
    assert fresh.lineage(ASSET)["trained_on"] == "v1"
    manifest = fresh.manifest(ASSET)
    assert sorted(e["path"] for e in manifest["files"]) == ["adapter/adapter_config.json", "job_result.json",
                                                           "lineage.json"]

    # a failed step: nothing committed, the previous artifact is the one readers see, no version left behind
    result, _ = train(launcher, url, host, "v2")
    assert not result.success
    again = open_store(url, cache_dir=tmp_path / "fresh-2")
    assert again.lineage(ASSET)["trained_on"] == "v1"
    assert json.loads((again.current(ASSET) / "adapter" / "adapter_config.json").read_text())["examples"] == 5
    prefix = f"pipeline/{ASSET}/.versions/latest/"
    versions = {b.name[len(prefix):].split("/", 1)[0] for b in client.list_blobs(bucket, prefix=prefix)}
    assert versions == {manifest["version"]}
