"""How often a preempted training step is retried, and when spot gives way to on-demand.

The training assets carry `PREEMPTION_RETRY_POLICY`. A policy is part of the definitions, built when the code
location is imported, and that import reads no environment, so its `max_retries` is a static ceiling
(`PREEMPTION_RETRY_CEILING`); the cloud launchers enforce their `max_preemptions` field (bound to
``EDUGRAPH_GCP_MAX_PREEMPTIONS``) below it, turning the preemption after the last allowed one into a `StepFailed`,
and their `on_demand_after` (``EDUGRAPH_GCP_ON_DEMAND_AFTER``) decides when spot gives way.

A Dagster retry policy retries every exception of the asset body except a ``Failure(allow_retries=False)``; only a
preemption should be retried. The launchers raise real step failures as `StepFailed` (not retried), and
`retried_on_preemption_only` (under ``@dg.asset``) makes every other error of the asset body a non-retryable
`Failure` too: a missing dataset or a bug fails at once instead of after twenty growing delays.
"""

from __future__ import annotations

import functools

import dagster as dg

from edugraph_pipeline.defs.training.launchers.base import StepPreempted

MAX_PREEMPTIONS_ENV = "EDUGRAPH_GCP_MAX_PREEMPTIONS"
ON_DEMAND_AFTER_ENV = "EDUGRAPH_GCP_ON_DEMAND_AFTER"
PREEMPTION_RETRY_CEILING = 20
# A new VM after 1, 2, 3, ... minutes (± half): capacity that was just taken back rarely returns at once.
PREEMPTION_RETRY_POLICY = dg.RetryPolicy(
    max_retries=PREEMPTION_RETRY_CEILING, delay=60, backoff=dg.Backoff.LINEAR, jitter=dg.Jitter.PLUS_MINUS
)


def checked_max_preemptions(value: int) -> int:
    """A launcher's `max_preemptions`: preemptions a run survives (0 .. the policy's ceiling)."""
    if not 0 <= value <= PREEMPTION_RETRY_CEILING:
        raise ValueError(f"{MAX_PREEMPTIONS_ENV}={value}: expected 0 to {PREEMPTION_RETRY_CEILING}")
    return value


def checked_on_demand_after(value: int | None) -> int | None:
    """A launcher's `on_demand_after`: after this many preemptions the next machine is on-demand (None: never)."""
    if value is not None and value < 0:
        raise ValueError(f"{ON_DEMAND_AFTER_ENV}={value}: expected a count >= 0 (unset: stay on spot)")
    return value


def retried_on_preemption_only(fn):
    """Decorate an asset body that carries `PREEMPTION_RETRY_POLICY`: `StepPreempted` (and Dagster's own errors and
    retry requests) pass as they are; any other error becomes a `Failure` with ``allow_retries=False`` and the
    error as its cause, so the policy does not retry it."""

    @functools.wraps(fn)
    def body(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StepPreempted, dg.DagsterError, dg.RetryRequested):
            raise
        except dg.Failure as failure:
            if not failure.allow_retries:
                raise
            raise dg.Failure(description=failure.description, metadata=failure.metadata, allow_retries=False) from failure
        except Exception as error:
            raise dg.Failure(description=f"{type(error).__name__}: {error}", allow_retries=False) from error

    return body
