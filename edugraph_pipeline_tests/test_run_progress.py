"""The progress and timings `edugraph run` reads from the event log, on a small job of stand-in assets: step starts
and ends with their times, the `reused` flag, check results, step log lines, failures, and the printer that follows
a run it is started before."""

import re

import dagster as dg

from edugraph_pipeline.defs.pipeline.progress import ProgressPrinter, clock, timeline_of


@dg.asset
def first(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info("training job: stage knowledge")
    context.log.debug("not shown")
    return dg.MaterializeResult(metadata={"reused": True})


@dg.asset(deps=[first], check_specs=[dg.AssetCheckSpec("looks_right", asset="second")])
def second() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="looks_right", passed=False)])


@dg.asset(deps=[second])
def third() -> None:
    raise dg.Failure("the third step breaks")


def test_clock():
    assert [clock(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0:00", "1:00", "1:01", "1:01:02"]


def test_the_timeline_and_the_printed_progress_of_a_run():
    lines: list[str] = []
    with dg.instance_for_test() as instance:
        run_id = "0f1e2d3c-0000-4000-8000-000000000001"
        job = dg.Definitions(assets=[first, second, third]).resolve_implicit_global_asset_job_def()
        with ProgressPrinter(instance, run_id, lines.append, poll_s=0.05) as progress:
            result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
        assert not result.success
        timeline = timeline_of(instance, run_id)

    for followed in (progress.timeline, timeline):
        assert list(followed.steps) == ["first", "second", "third"]
        steps = followed.steps
        assert [steps[name].outcome for name in steps] == ["succeeded", "succeeded", "failed"]
        assert steps["first"].reused is True and steps["second"].reused is None
        assert steps["first"].materialized and not steps["third"].materialized
        assert steps["second"].checks == {"looks_right": False}
        assert steps["third"].failure and "the third step breaks" in steps["third"].failure
        assert all(steps[name].seconds >= 0 for name in steps)
        assert steps["first"].first_pipes_message is not None and steps["first"].startup_seconds >= 0
        assert followed.seconds > 0
    shown = [re.sub(r"^\[ *\d+:\d\d\] ", "", line) for line in lines]
    assert shown[:4] == ["> first", "  training job: stage knowledge", shown[2], "> second"]
    assert re.fullmatch(r"= first succeeded \(\d:\d\d\), reused", shown[2])
    assert "  check looks_right: FAILED" in shown and "> third" in shown
    assert re.fullmatch(r"! third failed \(\d:\d\d\)", shown[-1])
    assert "not shown" not in "\n".join(lines)
