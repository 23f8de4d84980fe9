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
from edugraph_pipeline.training.profiles import (
    BASE_MODEL_ENV,
    DEVICE_ENV,
    DEVICES,
    MODEL_ENV,
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
    """What a run resolved: the profile (with any base override), run mode and device."""

    profile: ModelProfile
    run_mode: str
    device: str

    def as_record(self) -> dict:
        return {"profile": self.profile.name, "run_mode": self.run_mode, "device": self.device}


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

    def resolve(self) -> TrainingChoice:
        base, _ = settings.chosen("base_model", self.base_model, BASE_MODEL_ENV)
        return TrainingChoice(
            profile=profile(_choose("profile", self.profile, MODEL_ENV, tuple(PROFILES)), base or None),
            run_mode=_choose("run_mode", self.run_mode, RUN_MODE_ENV, RUN_MODES),
            device=_choose("device", self.device, DEVICE_ENV, DEVICES),
        )


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
