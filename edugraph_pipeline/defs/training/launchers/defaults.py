"""Where a launcher's settings come from. Each field's default is its `Setting`'s default (settings.py owns every
default; `default` reads the table, not the environment); `bound` gives a field its environment variable as a
`dg.EnvVar` where the variable is set: checked now, resolved by Dagster when a run starts, and shown as
``env: NAME`` in the launchpad and the run's config.

Dagster's `EnvVar` carries strings and integers only, so the few true/false and fractional fields (`spot`, `gpus`,
`max_run_hours`) are read here, checked, as plain values (`flag`, `number`).
"""

from __future__ import annotations

import dagster as dg

from edugraph_pipeline import settings

_CANONICAL_FLAGS = {"true": True, "false": False}  # how settings.py writes a flag's default


def default(name: str) -> str:
    """The default of the setting `name`, as settings.py writes it."""
    for item in settings.SETTINGS:
        if item.name == name:
            return item.default
    raise KeyError(f"unknown setting {name!r}")


def default_int(name: str) -> int:
    return int(default(name))


def default_number(name: str) -> float:
    return float(default(name))


def default_flag(name: str) -> bool:
    return _CANONICAL_FLAGS[default(name)]


def is_set(name: str) -> bool:
    """Whether the environment (or the `.env` file) sets `name`, as opposed to leaving it to its default."""
    return bool(settings.other_tool(name))


def bound(name: str, *, kind: type = str, optional: bool = False):
    """`dg.EnvVar(name)` (`dg.EnvVar.int` for `kind=int`) where the variable is set, its value checked now; else
    the setting's default (None for an `optional` field whose default is empty)."""
    if is_set(name):
        if kind is int:
            settings.integer(name)  # a malformed value fails when the code location loads, naming the variable
            return dg.EnvVar.int(name)
        return dg.EnvVar(name)
    if optional and not default(name):
        return None
    return default_int(name) if kind is int else default(name)


def flag(name: str) -> bool:
    """A true/false setting, checked (no `EnvVar` for booleans)."""
    return settings.flag(name)


def number(name: str) -> float:
    """A fractional setting, checked (no `EnvVar` for floats)."""
    return settings.number(name)


DEFAULT_IMAGE = default("EDUGRAPH_TRAINING_IMAGE")
