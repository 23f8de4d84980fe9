"""Watch a content source for new releases and build the worksheet dataset of each one once, bound to the ontology
release it was built for.

A `vX.Y.Z-NN` release is validated against ontology release `vX.Y.Z` only: its run goes to that partition, which is
added (with its `ontology_release`) when the tag exists in the ontology remote; a release built for an ontology
release the remote does not have is reported naming both and tried again on the next tick. Any other release (a bare
`vX.Y.Z`, an archive of a folder of releases) goes to the newest ontology partition, as it always did. The cursor
keeps release → commit, so a moved tag is a new release.
"""


import json

import dagster as dg

from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.partitions import ONTOLOGY_PARTITIONS_NAME, ontology_partitions
from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.releases import ReleaseSourceError, semver_key
from edugraph_pipeline.storage import layout
from edugraph_pipeline.worksheets.content_release import ContentSourceError
from edugraph_pipeline.worksheets.hub_source import split_release_id
from edugraph_pipeline.worksheets.release_series import ContentReleaseRef

# Run tag naming the content release a `worksheet_dataset` run reads (the source's newest when absent).
CONTENT_RELEASE_TAG = "edugraph/content_release"
WORKSHEET_DATASET = dg.AssetKey(layout.WORKSHEET_DATASET)
ONTOLOGY_RELEASE = dg.AssetKey(layout.ONTOLOGY_RELEASE)


def newest_ontology_partition(instance: dg.DagsterInstance) -> str | None:
    tags = []
    for tag in instance.get_dynamic_partitions(ONTOLOGY_PARTITIONS_NAME):
        try:
            tags.append((semver_key(tag), tag))
        except ValueError:
            continue  # a hand-added partition that is not a release tag
    return max(tags)[1] if tags else None


def read_cursor(cursor: str | None) -> dict[str, str | None]:
    """Release name -> the commit it was requested at ("" for an archive; None: requested before commits were
    kept, by a cursor of the older `{"seen": [...]}` form)."""
    if not cursor:
        return {}
    data = json.loads(cursor)
    if "releases" in data:
        return dict(data["releases"])
    migrated: dict[str, str | None] = {}
    for release in data.get("seen", []):
        name, commit = split_release_id(release)
        migrated[name] = commit
    return migrated


def _seen(cursor: dict[str, str | None], ref: ContentReleaseRef) -> bool:
    return ref.name in cursor and cursor[ref.name] in (None, ref.commit or "")


def _run_request(ref: ContentReleaseRef, partition: str, with_ontology: bool) -> dg.RunRequest:
    commit = f"@{ref.commit}" if ref.commit else ""
    return dg.RunRequest(
        run_key=f"worksheet_dataset:{ref.name}{commit}@{partition}",
        partition_key=partition,
        asset_selection=[ONTOLOGY_RELEASE, WORKSHEET_DATASET] if with_ontology else [WORKSHEET_DATASET],
        tags={CONTENT_RELEASE_TAG: ref.request},
    )


@dg.sensor(
    name="content_release_sensor",
    asset_selection=[ONTOLOGY_RELEASE, WORKSHEET_DATASET],
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests worksheet_dataset for every new content release (a git remote's or Hub dataset's "
    "vX.Y.Z / vX.Y.Z-NN tags, a moved tag included, or a folder of archives): a vX.Y.Z-NN release in partition "
    "vX.Y.Z (added, with its ontology_release, when the ontology remote has that tag), any other release in the "
    "newest ontology partition.",
)
def content_release_sensor(
    context: dg.SensorEvaluationContext, content_source: ContentSource, ontology_repository: OntologyRepository
):
    cursor = read_cursor(context.cursor)
    try:
        refs = content_source.list_release_refs()
    except (ContentSourceError, ReleaseSourceError, OSError) as error:
        # An unreachable source is a normal state (network, VPN); try again next tick.
        context.log.warning(f"cannot list content releases of {content_source.display_source}: {error}")
        return dg.SkipReason(f"content source unreachable: {error}")
    if not refs:
        return dg.SkipReason(f"{content_source.display_source} publishes no release series to watch")
    new = [ref for ref in refs if not _seen(cursor, ref)]
    if not cursor:  # the first tick builds only the newest existing release; older ones are history, not news
        cursor = {ref.name: ref.commit or "" for ref in new[:-1]}
        new = new[-1:]
    partitions = set(context.instance.get_dynamic_partitions(ONTOLOGY_PARTITIONS_NAME))
    newest = newest_ontology_partition(context.instance)
    remote_tags: set[str] | None = None
    requests, added, waiting = [], [], []
    for ref in new:
        bound = ref.ontology_version
        partition = bound or newest
        if partition is None:
            waiting.append(f"{ref.name}: no ontology release partition exists yet; the ontology sensor adds them")
            continue
        if partition not in partitions and partition not in added:
            if remote_tags is None:
                try:
                    remote_tags = {tag.name for tag in ontology_repository.list_releases()}
                except ReleaseSourceError as error:
                    context.log.warning(f"cannot list ontology releases to bind {ref.name}: {error}")
                    waiting.append(f"{ref.name}: ontology remote unreachable ({error})")
                    continue
            if partition not in remote_tags:
                newest_known = ", ".join(sorted(remote_tags, key=semver_key)[-3:]) or "none"
                message = (
                    f"content release {ref.name} is built for ontology release {partition}, which does not exist in "
                    f"{ontology_repository.display_remote} (newest: {newest_known}); it is not built against "
                    "another release, and is tried again when that release appears"
                )
                context.log.error(message)
                waiting.append(message)
                continue
            added.append(partition)
        requests.append(_run_request(ref, partition, with_ontology=partition in added))
        cursor[ref.name] = ref.commit or ""
    if requests:
        context.log.info(
            "requesting worksheet_dataset for "
            + ", ".join(f"{r.tags[CONTENT_RELEASE_TAG]} with ontology {r.partition_key}" for r in requests)
        )
    state = json.dumps({"releases": cursor}, sort_keys=True)
    if not requests and waiting:
        return dg.SensorResult(skip_reason="; ".join(waiting), cursor=state)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[ontology_partitions.build_add_request(added)] if added else [],
        cursor=state,
    )
