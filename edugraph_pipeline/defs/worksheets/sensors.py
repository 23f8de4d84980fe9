"""Watch a content source for new releases and build the worksheet dataset of each one once."""


import json

import dagster as dg

from edugraph_pipeline.defs.partitions import ONTOLOGY_PARTITIONS_NAME
from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.releases import ReleaseSourceError, semver_key
from edugraph_pipeline.worksheets.content_release import ContentSourceError

# Run tag naming the content release a `worksheet_dataset` run reads (the source's newest when absent).
CONTENT_RELEASE_TAG = "edugraph/content_release"
WORKSHEET_DATASET = dg.AssetKey("worksheet_dataset")


def newest_ontology_partition(instance: dg.DagsterInstance) -> str | None:
    tags = []
    for tag in instance.get_dynamic_partitions(ONTOLOGY_PARTITIONS_NAME):
        try:
            tags.append((semver_key(tag), tag))
        except ValueError:
            continue  # a hand-added partition that is not a release tag
    return max(tags)[1] if tags else None


@dg.sensor(
    name="content_release_sensor",
    asset_selection=[WORKSHEET_DATASET],
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests worksheet_dataset for every new content release (a git remote's or Hub dataset's vX.Y.Z "
    "tags, a moved Hub tag included, or a folder of archives), bound to the newest ontology release.",
)
def content_release_sensor(context: dg.SensorEvaluationContext, content_source: ContentSource):
    cursor = json.loads(context.cursor) if context.cursor else {"seen": []}
    seen = set(cursor.get("seen", []))
    try:
        releases = content_source.list_releases()
    except (ContentSourceError, ReleaseSourceError, OSError) as error:
        # An unreachable source is a normal state (network, VPN); try again next tick.
        context.log.warning(f"cannot list content releases of {content_source.display_source}: {error}")
        return dg.SkipReason(f"content source unreachable: {error}")
    if not releases:
        return dg.SkipReason(f"{content_source.display_source} publishes no release series to watch")
    partition = newest_ontology_partition(context.instance)
    if partition is None:
        return dg.SkipReason("no ontology release partition exists yet; the ontology sensor adds them")
    new = [release for release in releases if release not in seen]
    # On the first tick only the newest existing release is built; older ones are history, not news.
    to_request = new[-1:] if not cursor.get("seen") else new
    run_requests = [
        dg.RunRequest(
            run_key=f"worksheet_dataset:{release}@{partition}",
            partition_key=partition,
            asset_selection=[WORKSHEET_DATASET],
            tags={CONTENT_RELEASE_TAG: release},
        )
        for release in to_request
    ]
    if run_requests:
        context.log.info(f"requesting worksheet_dataset for {to_request} with ontology {partition}")
    return dg.SensorResult(run_requests=run_requests, cursor=json.dumps({"seen": sorted(seen | set(releases))}))
