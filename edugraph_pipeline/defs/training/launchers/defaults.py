"""Where a launcher's settings come from. Each field's default is its `Setting`'s default (settings.py owns every
default); `bound` gives a field its environment variable as a `dg.EnvVar` where the variable is set: checked now,
resolved by Dagster when a run starts, and shown as ``env: NAME`` in the launchpad and the run's config.

Dagster's `EnvVar` carries strings and integers only, so the true/false fields (`spot`, `gpus`) and the one
fractional field (`max_run_hours`) are read, checked, when the code location loads (`flag`, `number`: through
settings.py's parsers).
"""

from __future__ import annotations

from edugraph_pipeline import settings
from edugraph_pipeline.defs.env import bound

__all__ = ["DEFAULT_IMAGE", "bound", "default_flag", "default_int", "default_number", "flag", "number"]


def default_int(name: str) -> int:
    return int(settings.default(name))


def default_number(name: str) -> float:
    return float(settings.default(name))


def default_flag(name: str) -> bool:
    return settings.flag(name, settings.default(name))


def flag(name: str) -> bool:
    """A true/false setting, checked (`EnvVar` has no booleans)."""
    return settings.flag(name)


def number(name: str) -> float:
    """A fractional setting, checked (`EnvVar` has no floats)."""
    return settings.number(name)


DEFAULT_IMAGE = settings.default("EDUGRAPH_TRAINING_IMAGE")
