"""The chain of materializations behind an artifact, read from the Dagster instance.

Dagster records, on every materialization, which exact materialization of each upstream asset it read
(`dagster/input_event_pointer/<asset>` tags). Following those pointers gives the true lineage of one
artifact — not merely "the latest of each upstream asset".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import dagster as dg

INPUT_POINTER_PREFIX = "dagster/input_event_pointer/"
_FACT_SUFFIXES = ("_version", "_commit", "_sha256", "_hash", "fingerprint", "_id", "path", "url", "_remote", "base_model", "revision")


@dataclass
class LineageNode:
    asset: str
    partition: str | None
    run_id: str
    timestamp: float
    data_version: str | None
    code_version: str | None
    facts: dict[str, str]
    parents: list[LineageNode] = field(default_factory=list)

    def walk(self):
        yield self
        for parent in self.parents:
            yield from parent.walk()

    def to_json(self) -> dict:
        return {
            "asset": self.asset,
            "partition": self.partition,
            "run_id": self.run_id,
            "materialized_at": datetime.fromtimestamp(self.timestamp, tz=timezone.utc).isoformat(),
            "data_version": self.data_version,
            "code_version": self.code_version,
            "facts": self.facts,
            "parents": [parent.to_json() for parent in self.parents],
        }


def _facts(metadata: dict) -> dict[str, str]:
    facts = {}
    for key, entry in metadata.items():
        value = getattr(entry, "value", entry)
        if isinstance(value, (str, int, float)) and key.endswith(_FACT_SUFFIXES) and len(str(value)) <= 200:
            facts[key] = str(value)
    return dict(sorted(facts.items()))


def _node(instance: dg.DagsterInstance, record, seen: set[int]) -> LineageNode:
    event = record.event_log_entry.dagster_event
    materialization = event.event_specific_data.materialization
    tags = materialization.tags or {}
    node = LineageNode(
        asset=materialization.asset_key.to_user_string(),
        partition=materialization.partition,
        run_id=record.run_id,
        timestamp=record.timestamp,
        data_version=tags.get("dagster/data_version"),
        code_version=tags.get("dagster/code_version"),
        facts=_facts(materialization.metadata),
    )
    seen.add(record.storage_id)
    for tag, pointer in sorted(tags.items()):
        if not tag.startswith(INPUT_POINTER_PREFIX) or not pointer.isdigit() or int(pointer) in seen:
            continue
        parent_key = dg.AssetKey.from_user_string(tag[len(INPUT_POINTER_PREFIX) :])
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=parent_key, storage_ids=[int(pointer)]), limit=1
        ).records
        if found:
            node.parents.append(_node(instance, found[0], seen))
    return node


def lineage(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> LineageNode:
    """The lineage of the latest materialization of `asset` (of `partition`, if given)."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey.from_user_string(asset), asset_partitions=[partition] if partition else None
    )
    records = instance.fetch_materializations(records_filter, limit=1).records
    if not records:
        where = f" for partition {partition}" if partition else ""
        raise LookupError(f"no materialization of {asset}{where} in this Dagster instance")
    return _node(instance, records[0], set())


def render(node: LineageNode, depth: int = 0) -> str:
    """An indented tree: the artifact first, each upstream materialization it read below it."""
    pad = "    " * depth
    when = datetime.fromtimestamp(node.timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    partition = f" [{node.partition}]" if node.partition else ""
    head = "" if depth == 0 else "└─ "
    lines = [f"{pad}{head}{node.asset}{partition}  run {node.run_id[:8]}, {when}, data version {str(node.data_version)[:12]}"]
    lines += [f"{pad}     {key}: {value}" for key, value in node.facts.items()]
    lines += [render(parent, depth + 1) for parent in node.parents]
    return "\n".join(lines)
