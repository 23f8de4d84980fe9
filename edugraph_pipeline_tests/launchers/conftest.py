"""Shared pieces of the launcher tests: a tiny test-only asset around `launcher.launch`, a real `TrainingJob`
(stage "worksheet") with a dataset input and an output dir, and the fake secret that must never surface."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.defs.training.launchers import TrainingLauncher
from edugraph_pipeline.training.job import TrainingJob
from edugraph_pipeline.training.profiles import LoraSettings, StageConfig

HERE = Path(__file__).parent
STAND_IN_STEP = HERE / "stand_in_step.py"
RESUMABLE_STEP = HERE / "resumable_step.py"
FAIL_MARKER = "STAND_IN_FAIL"  # in the dataset folder: the stand-in steps fail like a bad dataset would
FAKE_HF_TOKEN = "hf_FAKEsecretTOKEN0123456789abcdef"


def materialize_with(
    launcher: TrainingLauncher,
    job: TrainingJob,
    workdir: Path,
    *,
    retry_policy: dg.RetryPolicy | None = None,
    identity: str | None = None,
):
    @dg.asset(retry_policy=retry_policy)
    def stand_in_adapter(context: dg.AssetExecutionContext, launcher: TrainingLauncher) -> dg.MaterializeResult:
        return launcher.launch(context, job=job, workdir=workdir, identity=identity).get_materialize_result()

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([stand_in_adapter], resources={"launcher": launcher}, instance=instance, raise_on_error=False)
    return result, instance


def all_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(run_id))


def user_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def stand_in_job(data: Path, *, max_steps: int = 8, save_steps: int = 2) -> TrainingJob:
    """A worksheet job as the training asset places it: dataset (input), staging output dir, stable work dir."""
    config = StageConfig(
        stage="worksheet",
        base_model="Qwen/Qwen3-VL-2B-Instruct",
        dataset_path=str(data / "datasets" / "worksheet-v1"),
        output_dir="",
        lora=LoraSettings(r=4, alpha=8, dropout=0.0, lr=0.05, epochs=1),
        batch_size=2,
        max_steps=max_steps,
        save_steps=save_steps,
        seed=0,
    )
    job = TrainingJob(stage="worksheet", mode="test", config=config, log_every=1)
    return job.placed(output_dir=str(data / "adapters" / "worksheet-v1"), work_dir=str(data / "work" / "worksheet-v1"))


@pytest.fixture
def training_job(tmp_path) -> tuple[TrainingJob, Path]:
    """A job like the training asset's: a dataset folder (input) and an output dir, under a data dir."""
    data = tmp_path / "data"
    dataset = data / "datasets" / "worksheet-v1"
    dataset.mkdir(parents=True)
    (dataset / "train.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(5)))
    step = data / "bin" / "stand_in_step.py"
    step.parent.mkdir()
    shutil.copy(STAND_IN_STEP, step)
    return stand_in_job(data), data


def make_step_fail(job: TrainingJob) -> None:
    (Path(job.config.dataset_path) / FAIL_MARKER).write_text("the data is bad\n")


def make_step_run_out_of_memory(job: TrainingJob) -> None:
    (Path(job.config.dataset_path) / "STAND_IN_OOM").write_text("the batch does not fit\n")


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every message of the step failure's error chain (the launcher's error is a cause of Dagster's)."""
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    parts, error = [], failure.step_failure_data.error
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)
