"""One training step as the asset sends it and the step runs it: the same frozen type on both sides of Pipes.

The asset builds a `TrainingJob` without its folders, takes its `identity` (what decides the result), then
`placed()` gives the copy that names the staging folder and the checkpoint folder: nothing is mutated after the
identity is taken. Through Pipes it travels as ``to_dict()`` (JSON) and the step reads it back with `from_dict`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

from edugraph_pipeline.training.profiles import RUN_MODES, StageConfig

TINY_BASE = "tiny_base"  # pretrain the tiny base model (no dataset, no adapter)
STAGES = (TINY_BASE, "knowledge", "worksheet")
# Bump when a change to the training code should retrain unchanged inputs (it is part of every identity).
TRAINING_CODE_VERSION = "4"  # 4: placement from memory, LoRA target choice, stage 1 stacked under QLoRA
# StageConfig fields that do not change what is trained: where it writes, how often it checkpoints.
UNDECISIVE_CONFIG = ("output_dir", "work_dir", "save_minutes")


@dataclass(frozen=True)
class TrainingJob:
    stage: str  # one of STAGES
    mode: str = "train"  # test: a small subset, one epoch (checks the path, not quality)
    config: StageConfig | None = None  # knowledge / worksheet: everything the stage trains with
    output_dir: str = ""  # where the result and job_result.json go: the artifact's staging folder
    work_dir: str = ""  # checkpoints; stable per identity, so a rerun of the same job resumes
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"training job stage {self.stage!r}: expected one of {STAGES}")
        if self.mode not in RUN_MODES:
            raise ValueError(f"training job mode {self.mode!r}: expected one of {RUN_MODES}")
        if (self.config is None) != (self.stage == TINY_BASE):
            raise ValueError(f"training job stage {self.stage!r}: a stage config is needed exactly for "
                             f"{STAGES[1:]}")
        if self.config is not None and self.config.stage != self.stage:
            raise ValueError(f"training job stage {self.stage!r} but its config is for stage {self.config.stage!r}")

    def placed(self, *, output_dir: str, work_dir: str) -> TrainingJob:
        """This job writing to `output_dir` with checkpoints in `work_dir` (its identity is unchanged)."""
        config = self.config.with_(output_dir=output_dir, work_dir=work_dir) if self.config else None
        return replace(self, output_dir=output_dir, work_dir=work_dir, config=config)

    def decisive(self) -> dict:
        """The job without the folders it writes to and its checkpoint clock: what decides the result."""
        data = self.to_dict()
        data.pop("output_dir")
        data.pop("work_dir")
        if data["config"] is not None:
            for name in UNDECISIVE_CONFIG:
                data["config"].pop(name)
        return data

    def identity(self, inputs: dict) -> str:
        """Everything a result depends on: the job, the versions of its inputs, the training code."""
        record = {"job": self.decisive(), "inputs": inputs, "code_version": TRAINING_CODE_VERSION}
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingJob:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrainingJob field(s) {sorted(unknown)}")
        data = dict(data)
        if data.get("config") is not None:
            data["config"] = StageConfig.from_dict(data["config"])
        return cls(**data)
