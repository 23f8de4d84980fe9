"""Partitions shared by every asset bound to one ontology release."""

import dagster as dg

ONTOLOGY_PARTITIONS_NAME = "ontology_releases"

# One partition per release tag (v0.1.0 ... v0.21.0, and whatever is released next): added by the release
# sensor or `edugraph releases sync`, never hard-coded.
ontology_partitions = dg.DynamicPartitionsDefinition(name=ONTOLOGY_PARTITIONS_NAME)


def newest_release_dep(asset: str) -> dg.AssetDep:
    """A dependency on the newest release's partition of `asset` (the last partition added, in release order).

    Models are not partitioned: `trained_adapter` and what follows always learn from the newest release, so a
    new release makes them stale and `dagster asset materialize --select trained_adapter` needs no partition.
    """
    return dg.AssetDep(asset, partition_mapping=dg.LastPartitionMapping())


def sync_release_partitions(instance: dg.DagsterInstance, tags: list[str]) -> list[str]:
    """Add a partition for every release tag (in release order) the instance does not know yet; returns those."""
    known = set(instance.get_dynamic_partitions(ontology_partitions.name))
    new = [tag for tag in tags if tag not in known]
    if new:
        instance.add_dynamic_partitions(ontology_partitions.name, new)
    return new
