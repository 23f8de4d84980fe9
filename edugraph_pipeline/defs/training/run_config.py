"""Per-run knobs of the training assets, editable in the launchpad and recorded in the run's config.

A field left empty takes its environment variable (the deployment's default, `edugraph settings`), read when the
run starts, never when the code location loads; the value a run resolved is what its lineage, metadata and job
identity record. Empty strings rather than nulls, so that the launchpad's "Scaffold all default config" lists
every knob.
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


def _given_or_env(value: str, env: str) -> str:
    return value.strip() or setting(env).strip()


def _choose(field: str, value: str, env: str, default: str, allowed: tuple[str, ...]) -> str:
    chosen = _given_or_env(value, env).lower() or default
    if chosen not in allowed:
        source = f"config field {field!r}" if value.strip() else env
        raise dg.Failure(f"{source}={chosen!r}: expected one of {', '.join(allowed)}")
    return chosen


class TrainingConfig(dg.Config):
    profile: str = Field(
        default="", description=f"Model profile: {', '.join(PROFILES)}. Empty: {MODEL_ENV} (default {TINY})."
    )
    run_mode: str = Field(
        default="",
        description=f"train, or test (a small subset, one epoch: checks the path, not quality). Empty: {RUN_MODE_ENV} "
        "(default train).",
    )
    base_model: str = Field(
        default="",
        description=f"Hub repo id or local folder replacing the profile's base model. Empty: {BASE_MODEL_ENV}.",
    )
    device: str = Field(
        default="", description=f"Training device: {', '.join(DEVICES)}. Empty: {DEVICE_ENV} (default auto)."
    )

    def resolve(self) -> TrainingChoice:
        name = _choose("profile", self.profile, MODEL_ENV, TINY, tuple(PROFILES))
        base = _given_or_env(self.base_model, BASE_MODEL_ENV)
        return TrainingChoice(
            profile=with_base_model(PROFILES[name], base or None),
            run_mode=_choose("run_mode", self.run_mode, RUN_MODE_ENV, "train", RUN_MODES),
            device=_choose("device", self.device, DEVICE_ENV, "auto", DEVICES),
        )


class WorksheetTrainingConfig(TrainingConfig):
    knowledge_adapter: str = Field(
        default="",
        description=f"Stage 1: '{FROM_ASSET}' (the knowledge_adapter asset), '{NO_STAGE_1}' (no stage 1) or the path "
        f"of a PEFT adapter to reuse. Empty: {KNOWLEDGE_ADAPTER_ENV} (itself empty: '{FROM_ASSET}').",
    )

    def stage_1_choice(self) -> str:
        """`asset`, `none`, or a path."""
        value = _given_or_env(self.knowledge_adapter, KNOWLEDGE_ADAPTER_ENV)
        if not value or value.lower() == FROM_ASSET:
            return FROM_ASSET
        return NO_STAGE_1 if value.lower() == NO_STAGE_1 else value
