"""Watch the ontology remote for new release tags."""


import json

import dagster as dg

from edugraph_pipeline.defs.ontology.jobs import ontology_release_job
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.releases import ReleaseSourceError, ReleaseTag


def plan_release_requests(tags: list[ReleaseTag], cursor: str | None) -> tuple[list[ReleaseTag], str]:
    """Tags not requested before (or moved to another commit), and the cursor that remembers them."""
    seen: dict[str, str] = json.loads(cursor) if cursor else {}
    fresh = [tag for tag in tags if seen.get(tag.name) != tag.commit]
    seen.update({tag.name: tag.commit for tag in fresh})
    return fresh, json.dumps(seen, sort_keys=True)


@dg.sensor(
    job=ontology_release_job,
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Adds a partition and requests a run for every new release tag of EDUGRAPH_ONTOLOGY_REPO.",
)
def ontology_release_sensor(
    context: dg.SensorEvaluationContext, ontology_repository: OntologyRepository
) -> dg.SensorResult | dg.SkipReason:
    try:
        tags = ontology_repository.list_releases()
    except ReleaseSourceError as error:
        # An unreachable remote is a transient condition: log it and try again next tick.
        context.log.warning(str(error))
        return dg.SkipReason(f"ontology remote unreachable: {error}")

    fresh, cursor = plan_release_requests(tags, context.cursor)
    if not fresh:
        return dg.SkipReason(f"no new release among {len(tags)} tags of {ontology_repository.display_remote}")
    known = set(context.instance.get_dynamic_partitions(ontology_partitions.name))
    new_partitions = [tag.name for tag in fresh if tag.name not in known]
    context.log.info(f"new releases: {', '.join(tag.name for tag in fresh)}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=tag.name, run_key=f"{tag.name}@{tag.commit}") for tag in fresh],
        dynamic_partitions_requests=[ontology_partitions.build_add_request(new_partitions)] if new_partitions else [],
        cursor=cursor,
    )
