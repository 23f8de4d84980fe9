"""How often a preempted training step is retried, and when spot gives way to on-demand.

The training assets carry `PREEMPTION_RETRY_POLICY`. A policy is part of the definitions, built when the code
location is imported, and that import reads no environment, so its `max_retries` is a static ceiling
(`PREEMPTION_RETRY_CEILING`); the launcher enforces ``EDUGRAPH_GCP_MAX_PREEMPTIONS`` (read when a step runs) below
it, turning the preemption after the last allowed one into a `StepFailed`. Only `StepPreempted` is meant for the
policy: the launchers raise every real step failure as `StepFailed` (``allow_retries=False``), which no policy
retries.
"""

from __future__ import annotations

import dagster as dg

from edugraph_pipeline import settings

MAX_PREEMPTIONS_ENV = "EDUGRAPH_GCP_MAX_PREEMPTIONS"
ON_DEMAND_AFTER_ENV = "EDUGRAPH_GCP_ON_DEMAND_AFTER"
PREEMPTION_RETRY_CEILING = 20
# A new VM after 1, 2, 3, ... minutes (± half): capacity that was just taken back rarely returns at once.
PREEMPTION_RETRY_POLICY = dg.RetryPolicy(
    max_retries=PREEMPTION_RETRY_CEILING, delay=60, backoff=dg.Backoff.LINEAR, jitter=dg.Jitter.PLUS_MINUS
)


def max_preemptions() -> int:
    """``EDUGRAPH_GCP_MAX_PREEMPTIONS``: preemptions a run survives (0 .. the policy's ceiling)."""
    value = settings.integer(MAX_PREEMPTIONS_ENV)
    if not 0 <= value <= PREEMPTION_RETRY_CEILING:
        raise ValueError(f"{MAX_PREEMPTIONS_ENV}={value}: expected 0 to {PREEMPTION_RETRY_CEILING}")
    return value


def on_demand_after() -> int | None:
    """``EDUGRAPH_GCP_ON_DEMAND_AFTER``: after this many preemptions the next machine is on-demand (unset: never)."""
    raw = settings.setting(ON_DEMAND_AFTER_ENV).strip()
    if not raw:
        return None
    value = settings.integer(ON_DEMAND_AFTER_ENV)
    if value < 0:
        raise ValueError(f"{ON_DEMAND_AFTER_ENV}={value}: expected a count >= 0 (unset: stay on spot)")
    return value
