"""Partitions shared by every asset bound to one ontology release, and which release the model assets learn from."""

from collections.abc import Callable

import dagster as dg

ONTOLOGY_PARTITIONS_NAME = "ontology_releases"

# One partition per release tag (v0.1.0 ... v0.21.0, and whatever is released next): added by the release
# sensor or `edugraph releases sync`, never hard-coded.
ontology_partitions = dg.DynamicPartitionsDefinition(name=ONTOLOGY_PARTITIONS_NAME)


def newest_release_dep(asset: str) -> dg.AssetDep:
    """A dependency on the newest release's partition of `asset` (the last partition added, in release order).

    Models are not partitioned: `trained_adapter` and what follows learn from the newest release that has content
    (`release_to_learn_from`), so a new release makes them stale and `dagster asset materialize --select
    trained_adapter` needs no partition.
    """
    return dg.AssetDep(asset, partition_mapping=dg.LastPartitionMapping())


def sync_release_partitions(instance: dg.DagsterInstance, tags: list[str]) -> list[str]:
    """Add a partition for every release tag (in release order) the instance does not know yet; returns those."""
    known = set(instance.get_dynamic_partitions(ontology_partitions.name))
    new = [tag for tag in tags if tag not in known]
    if new:
        instance.add_dynamic_partitions(ontology_partitions.name, new)
    return new


def release_to_learn_from(instance: dg.DagsterInstance, has_content: Callable[[str], bool], newest: str) -> str:
    """The ontology release the model assets train on: the newest release (the last partition added) that has
    worksheet content. Content releases are built for one ontology release (`vX.Y.Z-NN`), so the newest ontology
    release may have none yet; then the newest one that has is used. `newest` (the last partition) where no
    release has content yet (stage 1 alone needs none; stage 2 then fails naming the missing dataset)."""
    for tag in reversed(instance.get_dynamic_partitions(ONTOLOGY_PARTITIONS_NAME)):
        if has_content(tag):
            return tag
    return newest
