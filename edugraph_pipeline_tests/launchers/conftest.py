"""Shared pieces of the launcher tests: a tiny test-only asset around `launcher.launch`, a job with a dataset
input and an output dir, and the fake secret that must never surface."""


import shutil
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.defs.training.launchers import TrainingLauncher

STAND_IN_STEP = Path(__file__).with_name("stand_in_step.py")
FAKE_HF_TOKEN = "hf_FAKEsecretTOKEN0123456789abcdef"


def materialize_with(launcher: TrainingLauncher, job: dict, workdir: Path) :
    @dg.asset
    def stand_in_adapter(context: dg.AssetExecutionContext, launcher: TrainingLauncher) -> dg.MaterializeResult:
        return launcher.launch(context, job=job, workdir=workdir).get_materialize_result()

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([stand_in_adapter], resources={"launcher": launcher}, instance=instance, raise_on_error=False)
    return result, instance


def all_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    from dagster._serdes import serialize_value

    return "\n".join(serialize_value(entry) for entry in instance.all_logs(run_id))


def user_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


@pytest.fixture
def training_job(tmp_path) -> tuple[dict, Path]:
    """A job like the training helper's: a dataset folder (input) and an output dir, under a data dir."""
    data = tmp_path / "data"
    dataset = data / "datasets" / "worksheet-v1"
    dataset.mkdir(parents=True)
    (dataset / "train.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(5)))
    step = data / "bin" / "stand_in_step.py"
    step.parent.mkdir()
    shutil.copy(STAND_IN_STEP, step)
    job = {
        "stage": "worksheet",
        "base_model": "Qwen/Qwen3-VL-2B-Instruct",
        "dataset_path": str(dataset),
        "output_dir": str(data / "adapters" / "worksheet-v1"),
        "knowledge_adapter": None,
    }
    return job, data


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every message of the step failure's error chain (the launcher's error is a cause of Dagster's)."""
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    parts, error = [], failure.step_failure_data.error
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)
