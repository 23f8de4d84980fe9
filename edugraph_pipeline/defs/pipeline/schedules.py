"""Rebuild from the newest ontology release."""


import dagster as dg

from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.pipeline.jobs import full_pipeline_job
from edugraph_pipeline.releases import SEMVER_TAG, semver_key


def newest_release(partition_keys: list[str]) -> str | None:
    releases = [key for key in partition_keys if SEMVER_TAG.match(key)]
    return max(releases, key=semver_key) if releases else None


@dg.schedule(
    job=full_pipeline_job,
    cron_schedule="0 4 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily: rebuild from the newest known ontology release, once per release.",
)
def newest_release_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    newest = newest_release(context.instance.get_dynamic_partitions(ontology_partitions.name))
    if newest is None:
        return dg.SkipReason("no ontology release known yet: turn on ontology_release_sensor or run `edugraph releases sync`")
    # The run key makes each release rebuild once; a new release yields a new key.
    return dg.RunRequest(run_key=f"newest-{newest}", partition_key=newest)
