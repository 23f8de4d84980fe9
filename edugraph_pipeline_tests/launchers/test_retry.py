"""Only preemptions are retried: under the training assets' retry policy, `retried_on_preemption_only` lets a
`StepPreempted` through to the policy and turns every other error of the asset body into a failure the policy
does not retry (the message and the cause kept)."""

import dagster as dg
import pytest

from edugraph_pipeline.defs.training.launchers import StepPreempted
from edugraph_pipeline.defs.training.launchers.retry import PREEMPTION_RETRY_CEILING, retried_on_preemption_only
from edugraph_pipeline_tests.launchers.conftest import failure_text

FAST_RETRIES = dg.RetryPolicy(max_retries=PREEMPTION_RETRY_CEILING)


def run(body):
    @dg.asset(retry_policy=FAST_RETRIES)
    @retried_on_preemption_only
    def guarded(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return body(context)

    result = dg.materialize([guarded], raise_on_error=False)
    retries = sum(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
    return result, retries


def test_preemption_is_retried():
    def body(context):
        if context.retry_number < 2:
            raise StepPreempted(f"VM preempted (preemption {context.retry_number + 1} of 5)")
        return dg.MaterializeResult(metadata={"attempt": context.retry_number})

    result, retries = run(body)
    assert result.success and retries == 2


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (dg.Failure("dataset does not exist: materialize worksheet_dataset first"), "dataset does not exist"),
        (ValueError("knowledge_adapter='x': expected one of asset, none"), "ValueError: knowledge_adapter='x'"),
    ],
)
def test_other_errors_fail_at_once(error, text):
    def body(context):
        raise error

    result, retries = run(body)
    assert not result.success and retries == 0
    assert text in failure_text(result)
