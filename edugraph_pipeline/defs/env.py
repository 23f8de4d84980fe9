"""How a resource field gets its environment variable: `bound` gives it ``dg.EnvVar(name)`` where the variable is
set (the value checked now, so a malformed one fails when the code location loads, naming the variable; Dagster
resolves it when a run starts and shows ``env: NAME`` in the launchpad and the run's config), else a plain default.
"""

from __future__ import annotations

import dagster as dg

from edugraph_pipeline import settings

_SETTING_DEFAULT = object()


def bound(name: str, default=_SETTING_DEFAULT, *, kind: type = str, optional: bool = False):
    """`dg.EnvVar(name)` (`dg.EnvVar.int` for `kind=int`) where the variable is set; else `default` (the setting's
    own default when none is given; None for an `optional` field whose default is empty)."""
    if settings.is_set(name):
        if kind is int:
            settings.integer(name)
            return dg.EnvVar.int(name)
        return dg.EnvVar(name)
    if default is not _SETTING_DEFAULT:
        return default
    if optional and not settings.default(name):
        return None
    return int(settings.default(name)) if kind is int else settings.default(name)
