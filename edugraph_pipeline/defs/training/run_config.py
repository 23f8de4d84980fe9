"""Per-run knobs of the training assets, editable in the launchpad and recorded in the run's config.

A field left empty takes its environment variable (the deployment's default, `edugraph settings`), resolved here
and only here (`TrainingConfig.resolve`, `WorksheetTrainingConfig.stage_1_choice`, through `settings.chosen`) when
the run starts, never when the code location loads; the value a run resolved is what its lineage, metadata and job
identity record, and what the training code gets as arguments. Empty strings rather than nulls, so that the
launchpad's "Scaffold all default config" lists every knob.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from edugraph_pipeline import settings
from edugraph_pipeline.training.lora_targets import CHOICES as LORA_TARGET_CHOICES
from edugraph_pipeline.training.lora_targets import LORA_TARGETS_ENV
from edugraph_pipeline.training.placement import Override
from edugraph_pipeline.training.profiles import (
    BASE_MODEL_ENV,
    CHECKPOINT_MINUTES_ENV,
    DEVICE_ENV,
    DEVICES,
    MODEL_ENV,
    PLACEMENT_ENV,
    PROFILES,
    RUN_MODE_ENV,
    RUN_MODES,
    ModelProfile,
    profile,
)

KNOWLEDGE_ADAPTER_ENV = "EDUGRAPH_KNOWLEDGE_ADAPTER"
FROM_ASSET = "asset"  # stage 1 from the knowledge_adapter asset
NO_STAGE_1 = "none"


@dataclass(frozen=True)
class TrainingChoice:
    """What a run resolved: the profile (with any base override), run mode, device, stage-2 LoRA targets, placement
    override, and the checkpoint clock (which decides nothing about the result: not in the record)."""

    profile: ModelProfile
    run_mode: str
    device: str
    lora_targets: str = ""
    placement: str = ""
    save_minutes: float = 10.0

    def as_record(self) -> dict:
        return {"profile": self.profile.name, "run_mode": self.run_mode, "device": self.device,
                "lora_targets": self.lora_targets, "placement_override": self.placement}


def _choose(field: str, given: str, env: str, allowed: tuple[str, ...]) -> str:
    value, where = settings.chosen(field, given, env)
    value = value.lower()
    if value not in allowed:
        raise dg.Failure(f"{where}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _empty_takes(env: str) -> str:
    default = settings.default(env)
    return f"Empty: {env}" + (f" (default {default})." if default else ".")


class TrainingConfig(dg.Config):
    profile: str = Field(default="", description=f"Model profile: {', '.join(PROFILES)}. {_empty_takes(MODEL_ENV)}")
    run_mode: str = Field(
        default="",
        description=f"train, or test (a small subset, one epoch: checks the path, not quality). {_empty_takes(RUN_MODE_ENV)}",
    )
    base_model: str = Field(
        default="",
        description=f"Hub repo id or local folder replacing the profile's base model. {_empty_takes(BASE_MODEL_ENV)}",
    )
    device: str = Field(default="", description=f"Training device: {', '.join(DEVICES)}. {_empty_takes(DEVICE_ENV)}")
    lora_targets: str = Field(
        default="",
        description=f"Stage-2 LoRA targets: {', '.join(LORA_TARGET_CHOICES)} (language: vision tower and projector "
        f"frozen). Empty: {LORA_TARGETS_ENV} (itself empty: the profile's).",
    )
    placement: str = Field(
        default="",
        description="GPU placement override, e.g. 'precision=nf4,micro_batch=1,gradient_checkpointing=on' (any "
        f"subset). Empty: {PLACEMENT_ENV} (itself empty: decided from the card's memory).",
    )

    def resolve(self) -> TrainingChoice:
        base, _ = settings.chosen("base_model", self.base_model, BASE_MODEL_ENV)
        chosen = profile(_choose("profile", self.profile, MODEL_ENV, tuple(PROFILES)), base or None)
        targets, where = settings.chosen("lora_targets", self.lora_targets, LORA_TARGETS_ENV)
        if targets and targets.lower() not in LORA_TARGET_CHOICES:
            raise dg.Failure(f"{where}={targets!r}: expected one of {', '.join(LORA_TARGET_CHOICES)}")
        placement, where = settings.chosen("placement", self.placement, PLACEMENT_ENV)
        try:
            placement = ",".join(f"{name}={value}" for name, value in _fixed(Override.parse(placement)))
        except ValueError as exc:
            raise dg.Failure(f"{where}={placement!r}: {exc}") from None
        try:
            minutes = settings.number(CHECKPOINT_MINUTES_ENV)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from None
        if minutes < 0:
            raise dg.Failure(f"{CHECKPOINT_MINUTES_ENV}={minutes}: expected minutes >= 0 (0: no timed saves)")
        return TrainingChoice(
            profile=chosen,
            run_mode=_choose("run_mode", self.run_mode, RUN_MODE_ENV, RUN_MODES),
            device=_choose("device", self.device, DEVICE_ENV, DEVICES),
            lora_targets=targets.lower() or chosen.lora_targets,
            placement=placement,
            save_minutes=minutes,
        )


def _fixed(override: Override) -> list[tuple[str, str]]:
    """The override's fixed choices in one spelling (so equal overrides make equal job identities)."""
    values = {"precision": override.precision, "micro_batch": override.micro_batch,
              "gradient_checkpointing": None if override.gradient_checkpointing is None
              else ("on" if override.gradient_checkpointing else "off")}
    return [(name, str(values[name])) for name in override.fixed()]


class WorksheetTrainingConfig(TrainingConfig):
    knowledge_adapter: str = Field(
        default="",
        description=f"Stage 1: '{FROM_ASSET}' (the knowledge_adapter asset), '{NO_STAGE_1}' (no stage 1) or the path "
        f"of a PEFT adapter to reuse. Empty: {KNOWLEDGE_ADAPTER_ENV} (itself empty: '{FROM_ASSET}').",
    )

    def stage_1_choice(self) -> str:
        """`asset`, `none`, or a path."""
        value, _ = settings.chosen("knowledge_adapter", self.knowledge_adapter, KNOWLEDGE_ADAPTER_ENV)
        if not value or value.lower() == FROM_ASSET:
            return FROM_ASSET
        return NO_STAGE_1 if value.lower() == NO_STAGE_1 else value
