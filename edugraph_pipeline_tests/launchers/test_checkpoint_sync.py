"""The real training step with its checkpoints in GCS (the emulator): the tiny model's stage 2 is cut off after
step 3 on one "machine"; the entry point on a fresh machine (an empty work dir) restores checkpoint-2 from GCS and
finishes the 4 steps, uploading checkpoint-4."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from transformers import TrainerCallback

from edugraph_pipeline.cloud.gcs import client as gcs_client
from edugraph_pipeline.training.checkpoint_sync import SYNC_ENV, CheckpointStore, synced_checkpoints
from edugraph_pipeline.training.entrypoint import run_job
from edugraph_pipeline.training.job import TrainingJob
from edugraph_pipeline_tests.kit.gcp import StorageEmulator
from edugraph_pipeline_tests.training.conftest import (  # noqa: F401 - the training tests' fixtures
    offline,
    raw_tiny_model,
    stage_cfg,
    tiny_base,
    tiny_datasets,
)

BUCKET = "edugraph-checkpoints"
ROOT = "pipeline/work/job-key/checkpoints"


class _Preempted(Exception):
    pass


class _PreemptAfter(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= 3:
            raise _Preempted(f"machine taken back after step {state.global_step}")


@pytest.fixture
def emulator(monkeypatch):
    with StorageEmulator(BUCKET) as storage:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.host)
        yield storage


def test_entrypoint_resumes_from_the_checkpoint_in_gcs(emulator, stage_cfg, tmp_path, monkeypatch):  # noqa: F811
    from edugraph_pipeline.training.sft import CHECKPOINT_DIR, train_worksheet_adapter

    monkeypatch.setenv(SYNC_ENV, f"gs://{BUCKET}/{ROOT}")
    cfg = stage_cfg("worksheet", max_steps=4, save_steps=2)
    first = cfg.with_(work_dir=str(tmp_path / "machine-1" / "work"), output_dir=str(tmp_path / "machine-1" / "out"))
    logs: list[str] = []
    with pytest.raises(_Preempted):
        callbacks = synced_checkpoints(Path(first.work_dir) / CHECKPOINT_DIR, logs.append)
        train_worksheet_adapter(first, callbacks=[*callbacks, _PreemptAfter()])
    assert logs == [f"no synced checkpoint in gs://{BUCKET}/{ROOT}: training from step 0",
                    f"checkpoint-2 synced to gs://{BUCKET}/{ROOT}"]
    shutil.rmtree(tmp_path / "machine-1")  # the VM and its disk are gone

    second = cfg.with_(work_dir=str(tmp_path / "machine-2" / "work"))
    job = TrainingJob(stage="worksheet", mode="test", config=second, log_every=1).placed(
        output_dir=str(tmp_path / "machine-2" / "out"), work_dir=second.work_dir
    )
    Path(job.output_dir).mkdir(parents=True)
    logs.clear()
    metrics = run_job(job, log_fn=logs.append)
    assert f"resumed from checkpoint-2 (restored from gs://{BUCKET}/{ROOT})" in logs
    assert (metrics["resumed_from_step"], metrics["steps"], metrics["steps_this_run"]) == (2, 4, 2)
    store = CheckpointStore(gcs_client(), BUCKET, ROOT)
    assert [c.step for c in store.complete()] == [2, 4]
    assert "trainer_state.json" in store.newest().files
