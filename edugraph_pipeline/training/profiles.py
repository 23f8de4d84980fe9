"""Model profiles and training hyperparameters, as plain JSON-serialisable dataclasses.

A profile (``tiny``; ``2b``, ``4b``, ``8b``: Qwen3-VL; ``qwen3.5-4b``, ``qwen3.5-9b``, ``qwen3.5-27b``) fixes the
base model, the LoRA hyperparameters of both stages and which linears stage 2 adapts (`lora_targets.py`);
`stage_config` turns a profile, a run mode (``test``: small subset, one epoch; ``train``) and a device into the
`StageConfig` of one stage. Precision (bf16 LoRA or QLoRA), micro-batch and gradient checkpointing are not
profile settings: the training step decides them from the GPU's memory (`placement.py`, `device.py`), starting
from the profile's micro-batch and keeping its effective batch. Every choice is an argument: which profile, base
model, run mode, device, LoRA targets and placement override a run uses is decided once, by the training assets'
run config (`defs/training/run_config.py`, where an empty field takes its ``EDUGRAPH_*`` setting). A `TrainingJob` carries a `StageConfig` to the training step as a dict
(``to_dict``/``from_dict``) through Dagster Pipes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from edugraph_pipeline.training.lora_targets import ALL_LINEAR, LANGUAGE, check_choice

# The settings that choose these values (named in messages; read only by `defs/training/run_config.py`).
MODEL_ENV = "EDUGRAPH_MODEL"
BASE_MODEL_ENV = "EDUGRAPH_BASE_MODEL"
RUN_MODE_ENV = "EDUGRAPH_RUN_MODE"
DEVICE_ENV = "EDUGRAPH_DEVICE"
PLACEMENT_ENV = "EDUGRAPH_TRAINING_PLACEMENT"
CHECKPOINT_MINUTES_ENV = "EDUGRAPH_CHECKPOINT_MINUTES"
RUN_MODES = ("test", "train")
DEVICES = ("auto", "cpu", "cuda")
TINY = "tiny"


def _from_dict(cls, data: dict):
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {sorted(unknown)}")
    return cls(**data)


@dataclass(frozen=True)
class LoraSettings:
    r: int
    alpha: int
    dropout: float
    lr: float
    epochs: float
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0


@dataclass(frozen=True)
class StageConfig:
    """Everything one training stage needs; the training functions take nothing else."""

    stage: str  # "knowledge" (stage 1) or "worksheet" (stage 2)
    base_model: str  # hub repo id or local folder
    dataset_path: str  # a `datasets.save_to_disk` folder
    output_dir: str  # adapter/ and metrics.json are written here
    lora: LoraSettings
    # What `base_model` resolved once: the Hub commit sha, or "sha256:..." of a local folder's config and weights.
    # Every load of the base (both stages, the merge) uses exactly this; None only for ad-hoc runs outside the DAG.
    base_revision: str | None = None
    profile: str = TINY  # the model profile: decides whether a run without CUDA is allowed (device.py)
    device: str = "auto"  # EDUGRAPH_DEVICE: auto | cpu | cuda
    knowledge_adapter: str | None = None  # stage 2: stage 1's adapter, merged or stacked frozen (None: no stage 1)
    lora_targets: str = ALL_LINEAR  # stage 2's: "language" or "all-linear" (lora_targets.py); stage 1: language
    placement: str = ""  # an operator's placement override (placement.Override.parse); empty: decided by memory
    work_dir: str | None = None  # checkpoints/ and merged-base/ (default: output_dir); keep it stable to resume
    batch_size: int = 4  # the profile's micro-batch; the placement may change it, keeping batch_size x grad_accum
    grad_accum: int = 1
    max_steps: int = -1  # > 0: at most this many steps (the epochs still bound the run)
    max_train_samples: int | None = None  # test mode: a small subset
    max_length: int | None = 1024
    min_pixels: int = 32 * 32 * 4
    max_pixels: int = 32 * 32 * 256  # image tokens per image <= max_pixels / (32*32)
    save_steps: int = 100
    save_minutes: float = 10.0  # also save when this long has passed since the last save (0: off); not decisive
    save_total_limit: int = 2
    logging_steps: int = 10
    seed: int = 0
    cache_features: bool = True  # stage 2: process every image once (False: the processor runs per batch)
    group_by_length: bool = True
    loss_on_labels_only: bool = True  # compute lm_head only where labels are set (same loss, much less work)
    dataloader_num_workers: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StageConfig:
        data = dict(data)
        data["lora"] = _from_dict(LoraSettings, data["lora"])
        return _from_dict(cls, data)

    def with_(self, **changes) -> StageConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class ModelProfile:
    name: str
    base_model: str | None  # None: the tiny pretrained base built by the pipeline
    knowledge: LoraSettings
    worksheet: LoraSettings
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int | None = 1024
    min_pixels: int = 32 * 32 * 4
    max_pixels: int = 32 * 32 * 256
    save_steps: int = 100
    knowledge_max_steps: int = -1  # > 0: a cap on stage 1 steps (keeps the tiny profile's CPU runs bounded)
    worksheet_max_steps: int = -1  # > 0: a cap on stage 2 steps
    lora_targets: str = LANGUAGE  # stage 2's LoRA targets (lora_targets.py; measured in docs/training.md)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, ModelProfile] = {
    TINY: ModelProfile(
        name=TINY,
        base_model=None,
        knowledge=LoraSettings(r=8, alpha=16, dropout=0.05, lr=2e-3, epochs=1),
        worksheet=LoraSettings(r=16, alpha=32, dropout=0.0, lr=2e-3, epochs=30),
        batch_size=4,
        max_length=512,
        min_pixels=32 * 32 * 4,
        max_pixels=32 * 32 * 64,
        save_steps=200,
        lora_targets=ALL_LINEAR,
        # Caps that keep the first `make run` within minutes on 2 CPU cores (bench/pipeline_time.py): 1,380 stage-2
        # steps (30 epochs of 200 sample images) took 503 s of a 674 s run for exact match 0.35; the CI learning test
        # shows 200 steps already beat the majority baseline.
        knowledge_max_steps=200,
        worksheet_max_steps=600,
    ),
    "2b": ModelProfile(
        name="2b",
        base_model="Qwen/Qwen3-VL-2B-Instruct",
        knowledge=LoraSettings(r=8, alpha=16, dropout=0.05, lr=2e-4, epochs=2),
        worksheet=LoraSettings(r=32, alpha=64, dropout=0.1, lr=2e-4, epochs=2),
        batch_size=4,
        grad_accum=2,
        max_pixels=32 * 32 * 768,
    ),
    "4b": ModelProfile(
        name="4b",
        base_model="Qwen/Qwen3-VL-4B-Instruct",
        knowledge=LoraSettings(r=8, alpha=16, dropout=0.05, lr=2e-4, epochs=2),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=2e-4, epochs=2),
        batch_size=2,
        grad_accum=4,
        max_pixels=32 * 32 * 768,
    ),
    "8b": ModelProfile(
        name="8b",
        base_model="Qwen/Qwen3-VL-8B-Instruct",
        knowledge=LoraSettings(r=16, alpha=32, dropout=0.1, lr=2e-4, epochs=3),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=2e-4, epochs=3),
        batch_size=1,
        grad_accum=8,
        max_pixels=32 * 32 * 768,
    ),
    # Qwen3.5, upstream's successor line (docs/qwen3_5.md): the 4B like `4b`, the 9B like `8b`, the 27B with the
    # 8B's ranks, a lower learning rate and a micro-batch of 1. Same pixel budget (Qwen3.5 also turns 32 x 32
    # pixels into one token) and sequence length. Without the flash-linear-attention kernels transformers runs the
    # Gated DeltaNet in its pure-torch fallback: slower, and the placement estimate assumes its memory.
    "qwen3.5-4b": ModelProfile(
        name="qwen3.5-4b",
        base_model="Qwen/Qwen3.5-4B",
        knowledge=LoraSettings(r=8, alpha=16, dropout=0.05, lr=2e-4, epochs=2),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=2e-4, epochs=2),
        batch_size=2,
        grad_accum=4,
        max_pixels=32 * 32 * 768,
    ),
    "qwen3.5-9b": ModelProfile(
        name="qwen3.5-9b",
        base_model="Qwen/Qwen3.5-9B",
        knowledge=LoraSettings(r=16, alpha=32, dropout=0.1, lr=2e-4, epochs=3),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=2e-4, epochs=3),
        batch_size=1,
        grad_accum=8,
        max_pixels=32 * 32 * 768,
    ),
    "qwen3.5-27b": ModelProfile(
        name="qwen3.5-27b",
        base_model="Qwen/Qwen3.5-27B",
        knowledge=LoraSettings(r=16, alpha=32, dropout=0.1, lr=1e-4, epochs=2),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=1e-4, epochs=2),
        batch_size=1,
        grad_accum=8,
        max_pixels=32 * 32 * 768,
    ),
}


def with_base_model(chosen: ModelProfile, base_model: str | None) -> ModelProfile:
    """`chosen` with its base model replaced (a Hub id or local folder), or as it is for None."""
    return replace(chosen, base_model=base_model) if base_model else chosen


def profile(name: str, base_model: str | None = None) -> ModelProfile:
    """The profile named, with `base_model` (a Hub id or local folder) replacing its base when given."""
    if name not in PROFILES:
        raise ValueError(f"{MODEL_ENV}={name!r}: expected one of {', '.join(PROFILES)}")
    return with_base_model(PROFILES[name], base_model)


def stage_config(
    stage: str,
    *,
    base_model: str,
    dataset_path: str,
    output_dir: str,
    base_revision: str | None = None,
    knowledge_adapter: str | None = None,
    prof: ModelProfile,
    mode: str,
    device: str = StageConfig.device,
    lora_targets: str = "",
    placement: str = "",
    save_minutes: float = StageConfig.save_minutes,
) -> StageConfig:
    """The config of one stage for a profile, a run mode (``test``: small subset, one epoch) and a device;
    `lora_targets` (empty: the profile's), `placement` (an override; empty: none) and `save_minutes` as resolved
    by the run config."""
    if stage not in ("knowledge", "worksheet"):
        raise ValueError(f"unknown stage {stage!r}")
    if mode not in RUN_MODES:
        raise ValueError(f"{RUN_MODE_ENV}={mode!r}: expected one of {', '.join(RUN_MODES)}")
    if device not in DEVICES:
        raise ValueError(f"{DEVICE_ENV}={device!r}: expected one of {', '.join(DEVICES)}")
    lora = prof.knowledge if stage == "knowledge" else prof.worksheet
    cfg = StageConfig(
        stage=stage,
        base_model=base_model,
        base_revision=base_revision,
        profile=prof.name,
        device=device,
        dataset_path=dataset_path,
        output_dir=output_dir,
        lora=lora,
        knowledge_adapter=knowledge_adapter,
        lora_targets=check_choice(lora_targets or prof.lora_targets),
        placement=placement,
        save_minutes=save_minutes,
        batch_size=prof.batch_size,
        grad_accum=prof.grad_accum,
        max_length=prof.max_length,
        min_pixels=prof.min_pixels,
        max_pixels=prof.max_pixels,
        save_steps=prof.save_steps,
        max_steps=prof.knowledge_max_steps if stage == "knowledge" else prof.worksheet_max_steps,
    )
    if mode == "test":
        cfg = cfg.with_(
            lora=replace(lora, epochs=1), max_train_samples=16, max_steps=-1, save_steps=10, logging_steps=1
        )
    if save_minutes < 0:
        raise ValueError(f"{CHECKPOINT_MINUTES_ENV}={save_minutes}: expected minutes >= 0 (0: no timed saves)")
    return cfg
