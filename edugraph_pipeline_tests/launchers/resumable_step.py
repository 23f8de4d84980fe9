"""A CPU-small stand-in for the training entry point that checkpoints and resumes like the real one: a transformers
`Trainer` (the same class `sft.py` drives) fits a 4-input linear model to the job's dataset, saving into
``<work_dir>/checkpoints`` every ``config.save_steps`` and resuming from the newest checkpoint there, with the real
`checkpoint_sync.synced_checkpoints` callbacks (active when ``EDUGRAPH_CHECKPOINT_SYNC`` is set, as on a cloud
machine). Writes ``adapter/weights.json`` and ``job_result.json`` into the output dir and reports
``global_step`` and ``resumed_from_step``.

``EDUGRAPH_STAND_IN_STEP_SECONDS`` paces each step (a slow GPU), so a test can preempt it between two saves.
"""

import json
import os
import time
from pathlib import Path

import torch
from dagster_pipes import open_dagster_pipes
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from edugraph_pipeline.training.checkpoint_sync import synced_checkpoints
from edugraph_pipeline.training.job import TrainingJob


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x, y):
        return {"loss": ((self.linear(x).squeeze(-1) - y) ** 2).mean()}


class Rows(torch.utils.data.Dataset):
    def __init__(self, path: Path) -> None:
        self.rows = [json.loads(line) for line in path.read_text().splitlines()]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        return {"x": torch.tensor(row["x"], dtype=torch.float32), "y": torch.tensor(row["y"], dtype=torch.float32)}


class Pace(TrainerCallback):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(self.seconds)


with open_dagster_pipes() as pipes:
    job = TrainingJob.from_dict(pipes.get_extra("job"))
    cfg = job.config
    checkpoints = Path(job.work_dir) / "checkpoints"
    synced = synced_checkpoints(checkpoints, pipes.log.info)
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    torch.manual_seed(cfg.seed)
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lora.lr,
        max_steps=cfg.max_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=1,
        seed=cfg.seed,
        lr_scheduler_type="linear",
        report_to=[],
        use_cpu=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    callbacks = [*synced, Pace(float(os.environ.get("EDUGRAPH_STAND_IN_STEP_SECONDS", "0")))]
    trainer = Trainer(model=Linear(), args=args, train_dataset=Rows(Path(cfg.dataset_path) / "train.jsonl"),
                      callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume)
    weights = {k: v.flatten().tolist() for k, v in trainer.model.state_dict().items()}
    adapter = Path(job.output_dir) / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "weights.json").write_text(json.dumps(weights))
    resumed_from = int(Path(resume).name.split("-")[1]) if resume else None
    result = {"global_step": trainer.state.global_step, "resumed_from_step": resumed_from}
    (Path(job.output_dir) / "job_result.json").write_text(json.dumps(result))
    pipes.report_asset_materialization(metadata={k: -1 if v is None else v for k, v in result.items()})
