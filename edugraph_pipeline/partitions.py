"""Partitions shared by every asset bound to one ontology release."""

import dagster as dg

ONTOLOGY_PARTITIONS_NAME = "ontology_releases"

# One partition per release tag (v0.1.0 ... v0.21.0, and whatever is released next): added by the release
# sensor or `edugraph releases sync`, never hard-coded.
ontology_partitions = dg.DynamicPartitionsDefinition(name=ONTOLOGY_PARTITIONS_NAME)
