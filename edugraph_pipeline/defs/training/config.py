"""Per-run knobs of the training assets, editable in the launchpad and recorded in the run's config.

A field left unset takes its environment variable (the deployment's default, `edugraph settings`); the value a
run resolved is what its lineage, metadata and job identity record.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from edugraph_pipeline.settings import setting
from edugraph_pipeline.training.config import (
    BASE_MODEL_ENV,
    DEVICE_ENV,
    DEVICES,
    MODEL_ENV,
    PROFILES,
    RUN_MODE_ENV,
    RUN_MODES,
    TINY,
    ModelProfile,
    with_base_model,
)

KNOWLEDGE_ADAPTER_ENV = "EDUGRAPH_KNOWLEDGE_ADAPTER"
FROM_ASSET = "asset"  # stage 1 from the knowledge_adapter asset
NO_STAGE_1 = "none"


@dataclass(frozen=True)
class TrainingChoice:
    """What a run resolved: the profile (with any base override), run mode and device."""

    profile: ModelProfile
    run_mode: str
    device: str

    def as_record(self) -> dict:
        return {"profile": self.profile.name, "run_mode": self.run_mode, "device": self.device}


def _choose(field: str, value: str | None, env: str, default: str, allowed: tuple[str, ...]) -> str:
    chosen = (value if value is not None else setting(env)).strip().lower() or default
    if chosen not in allowed:
        source = f"config field {field!r}" if value is not None else env
        raise dg.Failure(f"{source}={chosen!r}: expected one of {', '.join(allowed)}")
    return chosen


class TrainingConfig(dg.Config):
    profile: str | None = Field(
        default=None, description=f"Model profile: {', '.join(PROFILES)}. Unset: {MODEL_ENV} (default {TINY})."
    )
    run_mode: str | None = Field(
        default=None,
        description=f"train, or test (a small subset, one epoch: checks the path, not quality). Unset: {RUN_MODE_ENV}.",
    )
    base_model: str | None = Field(
        default=None,
        description=f"Hub repo id or local folder replacing the profile's base model. Unset: {BASE_MODEL_ENV}.",
    )
    device: str | None = Field(
        default=None, description=f"Training device: {', '.join(DEVICES)}. Unset: {DEVICE_ENV} (default auto)."
    )

    def resolve(self) -> TrainingChoice:
        name = _choose("profile", self.profile, MODEL_ENV, TINY, tuple(PROFILES))
        base = (self.base_model if self.base_model is not None else setting(BASE_MODEL_ENV)).strip()
        return TrainingChoice(
            profile=with_base_model(PROFILES[name], base or None),
            run_mode=_choose("run_mode", self.run_mode, RUN_MODE_ENV, "train", RUN_MODES),
            device=_choose("device", self.device, DEVICE_ENV, "auto", DEVICES),
        )


class WorksheetTrainingConfig(TrainingConfig):
    knowledge_adapter: str | None = Field(
        default=None,
        description=f"Stage 1: '{FROM_ASSET}' (the knowledge_adapter asset), '{NO_STAGE_1}' (no stage 1) or the path "
        f"of a PEFT adapter to reuse. Unset: {KNOWLEDGE_ADAPTER_ENV} (empty means '{FROM_ASSET}').",
    )

    def stage_1_choice(self) -> str:
        """`asset`, `none`, or a path."""
        value = self.knowledge_adapter if self.knowledge_adapter is not None else setting(KNOWLEDGE_ADAPTER_ENV)
        value = value.strip()
        if not value or value.lower() == FROM_ASSET:
            return FROM_ASSET
        return NO_STAGE_1 if value.lower() == NO_STAGE_1 else value
