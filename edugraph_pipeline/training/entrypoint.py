"""The training container's entry point: ``python -m edugraph_pipeline.training.entrypoint``.

Under Dagster Pipes (what every launcher starts) it reads ``pipes.extras["job"]`` (a `TrainingJob` as a dict), runs
the job, streams progress with ``pipes.log`` and reports the materialization (scalar metadata + data version). For
debugging it also runs without Pipes: ``python -m edugraph_pipeline.training.entrypoint --job job.json`` (the same
dict, as JSON).

Only the ML libraries and ``dagster-pipes`` are imported here (no ``dagster``), so the GPU image stays small.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

from edugraph_pipeline.storage import file_sha256
from edugraph_pipeline.storage.layout import JOB_RESULT_FILE, MODEL_FOLDER
from edugraph_pipeline.training.job import TINY_BASE, TrainingJob


def _progress_callback(log_fn, every: int):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.start = time.perf_counter()
            self.last_step = -1

        def on_train_begin(self, args, state, control, **kwargs):
            log_fn(f"training started: {state.max_steps} steps (from step {state.global_step})")

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            step = state.global_step
            if "loss" not in logs or (step % every and step != state.max_steps) or step == self.last_step:
                return
            self.last_step = step
            elapsed = time.perf_counter() - self.start
            log_fn(
                f"step {step}/{state.max_steps} loss {float(logs['loss']):.4f} "
                f"lr {float(logs.get('learning_rate', 0)):.2e} elapsed {elapsed:.0f}s"
            )

        def on_save(self, args, state, control, **kwargs):
            log_fn(f"checkpoint saved at step {state.global_step}")

    return Progress()


def data_version_of(folder: Path) -> str:
    """The content hash of the weights written (adapter or model safetensors)."""
    digest = hashlib.sha256()
    for file in sorted(Path(folder).glob("*.safetensors")):
        digest.update(file.name.encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()[:24]


def run_job(job: TrainingJob, log_fn=print) -> dict:
    """Run one job; returns its metrics (also written to ``<output_dir>/job_result.json``)."""
    if not job.output_dir:
        raise ValueError("the training job names no output_dir: the asset sends `job.placed(...)`")
    if job.stage == TINY_BASE:
        from edugraph_pipeline.training.sft import device_name, model_revision, peak_memory_bytes
        from edugraph_pipeline.training.tiny_model import build_pretrained_tiny_model, folder_size

        out = Path(job.output_dir) / MODEL_FOLDER
        metrics = build_pretrained_tiny_model(out, job.mode, log_fn=log_fn)
        metrics.update(
            model_path=str(out),
            base_model_revision=model_revision(str(out)),
            disk_bytes=folder_size(out),
            device=device_name(),
            peak_memory_bytes=peak_memory_bytes(),
        )
        weights = out
    else:
        from edugraph_pipeline.training.checkpoint_sync import synced_bases, synced_checkpoints
        from edugraph_pipeline.training.sft import CHECKPOINT_DIR, MERGED_BASE_DIR, train_stage, work_dir

        callback = _progress_callback(log_fn, job.log_every)
        # On a cloud machine: restore the newest checkpoint synced to GCS first, and sync every save (a no-op here).
        synced = synced_checkpoints(work_dir(job.config) / CHECKPOINT_DIR, log_fn)
        # ... and the base's Hub snapshot and the stage-1-merged base an earlier machine of the job left (else synced)
        merged_base = work_dir(job.config) / MERGED_BASE_DIR if job.config.knowledge_adapter else None
        synced += synced_bases(job.config.base_model, job.config.base_revision, merged_base, log_fn)
        metrics = train_stage(job.config, callbacks=[callback, *synced])
        weights = Path(metrics["adapter_path"])
    metrics["data_version"] = data_version_of(weights)
    (Path(job.output_dir) / JOB_RESULT_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


def pipes_metadata(metrics: dict) -> dict:
    """Scalars as they are, structures as JSON (the asset adds the loss plot and table itself)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[key] = value
        else:
            out[key] = {"raw_value": value, "type": "json"}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", help="run this job (a JSON file) without Dagster Pipes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.job:
        job = TrainingJob.from_dict(json.loads(Path(args.job).read_text(encoding="utf-8")))
        metrics = run_job(job, log_fn=lambda msg: print(msg, flush=True))
        print(json.dumps({k: v for k, v in metrics.items() if k != "loss_history"}, indent=2, default=str))
        return 0
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        job = TrainingJob.from_dict(pipes.get_extra("job"))
        pipes.log.info(f"training job: stage {job.stage}")
        metrics = run_job(job, log_fn=pipes.log.info)
        pipes.report_asset_materialization(metadata=pipes_metadata(metrics), data_version=metrics["data_version"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
