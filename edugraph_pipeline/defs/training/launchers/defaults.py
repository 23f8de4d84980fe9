"""Where a launcher's settings come from. Each field's default is its `Setting`'s default (settings.py owns every
default); `bound` gives a field its environment variable as a `dg.EnvVar` where the variable is set: checked now,
resolved by Dagster when a run starts, and shown as ``env: NAME`` in the launchpad and the run's config.

Dagster's `EnvVar` carries strings and integers only, so the true/false fields (`spot`, `gpus`) and the one
fractional field (`max_run_hours`) are read, checked, when the code location loads (`flag`, `number`: through
settings.py's parsers).
"""

from __future__ import annotations

import dagster as dg

from edugraph_pipeline import settings


def default_int(name: str) -> int:
    return int(settings.default(name))


def default_number(name: str) -> float:
    return float(settings.default(name))


def default_flag(name: str) -> bool:
    return settings.flag(name, settings.default(name))


def bound(name: str, *, kind: type = str, optional: bool = False):
    """`dg.EnvVar(name)` (`dg.EnvVar.int` for `kind=int`) where the variable is set, its value checked now; else
    the setting's default (None for an `optional` field whose default is empty)."""
    if settings.is_set(name):
        if kind is int:
            settings.integer(name)  # a malformed value fails when the code location loads, naming the variable
            return dg.EnvVar.int(name)
        return dg.EnvVar(name)
    if optional and not settings.default(name):
        return None
    return default_int(name) if kind is int else settings.default(name)


def flag(name: str) -> bool:
    """A true/false setting, checked (`EnvVar` has no booleans)."""
    return settings.flag(name)


def number(name: str) -> float:
    """A fractional setting, checked (`EnvVar` has no floats)."""
    return settings.number(name)


DEFAULT_IMAGE = settings.default("EDUGRAPH_TRAINING_IMAGE")
