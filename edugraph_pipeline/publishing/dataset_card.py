"""The Hub dataset card (README.md) of a published dataset: front matter whose ``configs`` point
`datasets.load_dataset(repo_id)` at the Parquet shards, and a body listing splits, features and lineage.

Deterministic: same inputs, same bytes (so republishing an unchanged dataset creates no Hub commit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def dataset_card(
    repo_id: str,
    splits: Mapping[str, list[str]],
    *,
    pretty_name: str | None = None,
    description: str = "",
    lineage: Mapping[str, Any] | None = None,
    license: str = "apache-2.0",
    tags: tuple[str, ...] = ("edugraph", "education", "math"),
    num_rows: Mapping[str, int] | None = None,
    features: Mapping[str, str] | None = None,
) -> str:
    """A dataset card (README.md) whose ``configs`` point `datasets.load_dataset(repo_id)` at the Parquet shards."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data_files = [{"split": split, "path": f"data/{split}-*"} for split in splits]
    card_data = DatasetCardData(
        license=license,
        language=["en"],
        pretty_name=pretty_name or repo_id.split("/")[-1],
        tags=list(tags),
        configs=[{"config_name": "default", "data_files": data_files}],
        edugraph=json.loads(json.dumps(dict(lineage or {}), sort_keys=True, default=str)) or None,
    )
    split_rows = "\n".join(
        f"| `{split}` | {(num_rows or {}).get(split, '—')} | {len(shards)} |" for split, shards in splits.items()
    )
    feature_rows = "\n".join(f"| `{name}` | `{kind}` |" for name, kind in (features or {}).items())
    lineage_rows = "\n".join(
        f"| {key} | `{json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value}` |"
        for key, value in sorted((lineage or {}).items())
        if value not in (None, "")
    )
    body = f"""# {pretty_name or repo_id.split('/')[-1]}

{description or 'A dataset produced by the EduGraph pipeline.'}

## Splits

| Split | Rows | Parquet shards |
| --- | --- | --- |
{split_rows}
"""
    if feature_rows:
        body += f"\n## Features\n\n| Column | Type |\n| --- | --- |\n{feature_rows}\n"
    if lineage_rows:
        body += f"\n## Lineage\n\n| Input | Version |\n| --- | --- |\n{lineage_rows}\n"
    body += f"""
## Usage

```python
from datasets import load_dataset

dataset = load_dataset("{repo_id}")
```
"""
    card = DatasetCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}", body=body)
    text = str(card)
    return text if text.endswith("\n") else text + "\n"
