"""Spot-safe progress beyond the checkpoints, with the real training entry point: stage 2 of the tiny model on a Hub
base (the local Hub stand-in) with a knowledge adapter to merge, on the Compute Engine stand-in and the GCS
emulator. The first VM downloads the base from the Hub, merges stage 1 and syncs both (files, then a marker) under
the job's work folder, then is preempted after checkpoint-2; the second VM restores the snapshot and the merged
base from GCS - it neither downloads the base from the Hub again nor merges - and finishes from checkpoint-2."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from edugraph_pipeline.cloud.gcs import client as gcs_client
from edugraph_pipeline.training.checkpoint_sync import BASE_SNAPSHOT_FOLDER, MERGED_BASE_FOLDER
from edugraph_pipeline.training.job import TrainingJob
from edugraph_pipeline.training.sft import MERGED_BASE_DIR
from edugraph_pipeline_tests.conftest import TOKEN
from edugraph_pipeline_tests.launchers.conftest import materialize_with, user_messages
from edugraph_pipeline_tests.launchers.test_gcp_launcher import BUCKET, gcp, make_launcher  # noqa: F401 - fixture
from edugraph_pipeline_tests.launchers.test_gcp_preemption import FAST_RETRIES, metadata_of, retries
from edugraph_pipeline_tests.training.conftest import (  # noqa: F401 - the training tests' fixtures
    raw_tiny_model,
    stage_cfg,
    tiny_base,
    tiny_datasets,
)

REPO = "edugraph-test/tiny-vl"
KEY = "c" * 32


@pytest.fixture
def knowledge_adapter(tiny_base, tmp_path) -> Path:  # noqa: F811
    """A stage-1 adapter for the tiny base (untrained: what matters here is that stage 2 must merge it)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_base)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=r".*language_model.*\.(q_proj|v_proj)")
    folder = tmp_path / "knowledge-adapter"
    get_peft_model(model, lora).save_pretrained(folder)
    return folder


def test_the_next_vm_restores_the_base_snapshot_and_the_merged_base(gcp, hub, stage_cfg, tiny_base,  # noqa: F811
                                                                     knowledge_adapter, tmp_path):
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo(REPO)
    api.upload_folder(folder_path=str(tiny_base), repo_id=REPO)
    revision = hub.head(REPO)
    repo_files = set(hub.files(REPO))

    cfg = stage_cfg("worksheet", max_steps=4, save_steps=2).with_(
        base_model=REPO, base_revision=revision, knowledge_adapter=str(knowledge_adapter))
    data = tmp_path / "host"
    job = TrainingJob(stage="worksheet", mode="test", config=cfg, log_every=1).placed(
        output_dir=str(data / "adapters" / "worksheet-v1"), work_dir=str(data / "work" / "worksheet-v1"))
    gcp.preempt_vms, gcp.preempt_after_checkpoints = 1, 1  # the first VM is taken back once checkpoint-2 is synced
    launcher = make_launcher(
        gcp, Path("unused"), command=None, python=sys.executable, hf_token_secret=None, max_preemptions=3,
        env={"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
             "TOKENIZERS_PARALLELISM": "false"},
    )
    result, instance = materialize_with(launcher, job, data / "run", retry_policy=FAST_RETRIES, identity=KEY * 2)
    messages = [m or "" for m in user_messages(instance, result.run_id)]
    assert result.success, "\n".join(messages)
    assert retries(result) == 1
    first, second = gcp.booted

    bases = f"gs://{BUCKET}/pipeline/work/{KEY}/bases"
    snapshot, merged = f"{bases}/{BASE_SNAPSHOT_FOLDER}", f"{bases}/{MERGED_BASE_FOLDER}"
    def said(text: str, end: str = "") -> list[str]:
        return [m for m in messages if text in m and m.endswith(end)]

    assert len(said(f"base {REPO}@{revision[:12]} downloaded from the Hub and synced to {snapshot} (")) == 1
    assert len(said(f"base {REPO}@{revision[:12]} restored from {snapshot} (", "): not downloaded from the Hub")) == 1
    assert len(said(f"no merged base in {merged} yet: this machine merges stage 1 and syncs the result")) == 1
    assert len(said(f"merged base synced to {merged} (")) == 1
    assert len(said(f"merged base restored from {merged} (", "): stage 1 is not merged again")) == 1
    # the first VM synced the merged base when training began; the second restored it after its checkpoint
    events = [event for m in messages for event in ("merged base synced", "resumed from checkpoint-2",
                                                    "merged base restored") if event in m]
    assert events == ["merged base synced", "resumed from checkpoint-2", "merged base restored"]

    # every file of the base came from the Hub once, to the first VM: the second downloaded none
    gets = Counter(r.path.split(f"/{revision}/", 1)[1] for r in hub.requests_for("resolve") if r.method == "GET")
    assert set(gets) == repo_files and set(gets.values()) == {1}

    # the second VM trained on the merged base it restored, from checkpoint-2, to the end
    metadata = metadata_of(result)
    assert (metadata["resumed_from_step"], metadata["steps"]) == (2, 4)
    second_merged = gcp.vm_root / second / Path(job.work_dir).relative_to("/") / MERGED_BASE_DIR
    assert metadata["trained_on"] == str(second_merged)
    client = gcs_client()
    prefix = f"pipeline/work/{KEY}/bases/{MERGED_BASE_FOLDER}/"
    remote = {b.name[len(prefix):]: b.download_as_bytes() for b in client.list_blobs(BUCKET, prefix=prefix)}
    local = {p.relative_to(second_merged).as_posix(): p.read_bytes() for p in second_merged.rglob("*") if p.is_file()}
    assert "config.json" in local and any(name.endswith(".safetensors") for name in local)
    assert {name: data for name, data in remote.items() if name != "_EDUGRAPH_COMPLETE.json"} == local
    first_snapshot = gcp.vm_root / first / "home" / ".cache" / "huggingface" / "hub"
    assert (first_snapshot / "models--edugraph-test--tiny-vl" / "snapshots" / revision / "config.json").is_file()
