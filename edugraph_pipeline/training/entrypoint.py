"""The training container's entry point: ``python -m edugraph_pipeline.training.entrypoint``.

Under Dagster Pipes (what every launcher starts) it reads ``pipes.extras["job"]``, runs the job, streams progress
with ``pipes.log`` and reports the materialization (scalar metadata + data version). For debugging it also runs
without Pipes: ``python -m edugraph_pipeline.training.entrypoint --job job.json`` (the same dict, as JSON).

A job is a dict::

    {"stage": "knowledge" | "worksheet", "config": StageConfig.to_dict(), "log_every": 10}
    {"stage": "tiny_base", "output_dir": "...", "mode": "train" | "test"}

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

STAGES = ("tiny_base", "knowledge", "worksheet")
RESULT_FILE = "job_result.json"


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


def run_job(job: dict, log_fn=print) -> dict:
    """Run one job; returns its metrics (also written to ``<output_dir>/job_result.json``)."""
    stage = job.get("stage")
    if stage not in STAGES:
        raise ValueError(f"job stage {stage!r}: expected one of {STAGES}")
    if stage == "tiny_base":
        from edugraph_pipeline.training.sft import device_name, model_revision, peak_memory_bytes
        from edugraph_pipeline.training.tiny_model import build_pretrained_tiny_model, folder_size

        out = Path(job["output_dir"]) / "model"
        metrics = build_pretrained_tiny_model(out, job.get("mode", "train"), log_fn=log_fn)
        metrics.update(
            model_path=str(out),
            base_model_revision=model_revision(str(out)),
            disk_bytes=folder_size(out),
            device=device_name(),
            peak_memory_bytes=peak_memory_bytes(),
        )
        weights = out
        result_dir = Path(job["output_dir"])
    else:
        from edugraph_pipeline.training.config import StageConfig
        from edugraph_pipeline.training.sft import train_stage

        cfg = StageConfig.from_dict(job["config"])
        if cfg.stage != stage:
            raise ValueError(f"job stage {stage!r} but config stage {cfg.stage!r}")
        callback = _progress_callback(log_fn, int(job.get("log_every", cfg.logging_steps)))
        metrics = train_stage(cfg, callbacks=[callback])
        weights = Path(metrics["adapter_path"])
        result_dir = Path(cfg.output_dir)
    metrics["data_version"] = data_version_of(weights)
    (result_dir / RESULT_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
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
        job = json.loads(Path(args.job).read_text(encoding="utf-8"))
        metrics = run_job(job, log_fn=lambda msg: print(msg, flush=True))
        print(json.dumps({k: v for k, v in metrics.items() if k != "loss_history"}, indent=2, default=str))
        return 0
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        job = pipes.get_extra("job")
        pipes.log.info(f"training job: stage {job.get('stage')}")
        metrics = run_job(job, log_fn=pipes.log.info)
        pipes.report_asset_materialization(metadata=pipes_metadata(metrics), data_version=metrics["data_version"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
