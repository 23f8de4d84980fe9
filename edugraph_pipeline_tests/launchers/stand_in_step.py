"""A stand-in for the training entry point: speaks Dagster Pipes (dagster-pipes only), reads the job's dataset file,
writes an "adapter" into the job's output dir and reports a materialization. A ``STAND_IN_FAIL`` file in the
dataset makes it fail (like bad data would), a ``STAND_IN_OOM`` file like a GPU out of memory."""

import json
import os
import sys
from pathlib import Path

from dagster_pipes import open_dagster_pipes

with open_dagster_pipes() as pipes:
    job = pipes.extras["job"]  # a TrainingJob as a dict
    dataset = Path(job["config"]["dataset_path"])
    lines = (dataset / "train.jsonl").read_text().splitlines()
    pipes.log.info(f"stand-in step: training on {len(lines)} examples")
    print("stand-in stdout: epoch 1/1", flush=True)
    if (dataset / "STAND_IN_FAIL").exists():
        print("STAND-IN FAILURE: the loss exploded at step 3", file=sys.stderr, flush=True)
        raise RuntimeError("stand-in training diverged")
    if (dataset / "STAND_IN_OOM").exists():
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (stand-in)")  # torch.OutOfMemoryError's
    try:
        import edugraph_pipeline.training.remote  # noqa: F401 - the image carries the project

        project_importable = True
    except ImportError:
        project_importable = False
    adapter = Path(job["output_dir"]) / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"examples": len(lines), "first": lines[0]}))
    # the result file the training assets read back from their staging folder
    (Path(job["output_dir"]) / "job_result.json").write_text(json.dumps({"examples": len(lines)}))
    pipes.report_asset_materialization(
        metadata={
            "train_examples": len(lines),
            "hf_token_present": bool(os.environ.get("HF_TOKEN")),
            "project_importable": project_importable,
            "cwd": os.getcwd(),
            "dataset_path": str(dataset),  # where the step found its input (a VM's disk for the gcp launcher)
        }
    )
