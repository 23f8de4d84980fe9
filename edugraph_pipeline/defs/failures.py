"""Domain errors that mean "not materialized / not allowed" shown as a Dagster `Failure` with their own message.

The domain code (layout, evaluation gate) raises plain exceptions; a step that fails on one should read
"... does not exist: materialize X first" on the run page, not a stack trace behind a generic wrapper.
"""

import functools
import inspect

import dagster as dg

from edugraph_pipeline.evaluation.gate import PublicationRefused
from edugraph_pipeline.storage.layout import ArtifactMissing

REPORTED = (ArtifactMissing, PublicationRefused)


def reported_as_failure(fn):
    """Decorate an asset body (under `@dg.asset`): `REPORTED` errors become a `dg.Failure` with their message."""

    if inspect.isgeneratorfunction(fn):  # an asset that yields its results and checks

        @functools.wraps(fn)
        def yielding(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except REPORTED as error:
                raise dg.Failure(str(error), allow_retries=False) from None

        return yielding

    @functools.wraps(fn)
    def body(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except REPORTED as error:
            raise dg.Failure(str(error), allow_retries=False) from None

    return body
