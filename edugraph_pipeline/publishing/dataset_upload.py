"""A `datasets.save_to_disk` folder published as a Hub dataset (`publish_dataset_folder`): what `push_to_hub`
would create - Parquet shards under ``data/`` and a dataset card whose ``configs`` name them - committed with
`upload.publish_folder` (one atomic commit, none when unchanged).

`datasets` 5.2's `push_to_hub` takes no endpoint argument (it reads ``HF_ENDPOINT`` at import), hence the detour.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edugraph_pipeline.publishing.dataset_card import dataset_card
from edugraph_pipeline.publishing.upload import PublishResult, publish_folder


def publish_dataset_folder(
    dataset_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    endpoint: str,
    commit_message: str,
    private: bool = False,
    max_attempts: int = 3,
    pretty_name: str | None = None,
    description: str = "",
    lineage: Mapping[str, Any] | None = None,
    max_shard_bytes: int = 500 * 1024 * 1024,
    retry_wait: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    staging_dir: str | os.PathLike | None = None,
) -> PublishResult:
    """Publish a `save_to_disk` folder (a `Dataset` - as split ``train`` - or a `DatasetDict`) as a Hub dataset:
    ``data/{split}-{i:05d}-of-{n:05d}.parquet`` plus a dataset card, in one commit (none if unchanged)."""
    from datasets import Dataset, DatasetDict, load_from_disk

    loaded = load_from_disk(str(dataset_dir))
    splits_ds: dict[str, Dataset] = dict(loaded) if isinstance(loaded, DatasetDict) else {"train": loaded}
    own_staging = staging_dir is None
    staging = Path(tempfile.mkdtemp(prefix="edugraph-hub-dataset-")) if own_staging else Path(staging_dir)
    try:
        data = staging / "data"
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        shards: dict[str, list[str]] = {}
        features: dict[str, str] = {}
        for split, ds in splits_ds.items():
            n = max(1, math.ceil((ds.data.nbytes or 0) / max_shard_bytes))
            shards[split] = []
            for index in range(n):
                name = f"data/{split}-{index:05d}-of-{n:05d}.parquet"
                ds.shard(num_shards=n, index=index, contiguous=True).to_parquet(str(staging / name))
                shards[split].append(name)
            for column, feature in ds.features.items():
                features.setdefault(column, _feature_name(feature))
        card = dataset_card(
            repo_id,
            shards,
            pretty_name=pretty_name,
            description=description,
            lineage={
                **{f"fingerprint_{split}": ds._fingerprint for split, ds in splits_ds.items()},
                **dict(lineage or {}),
            },
            num_rows={split: ds.num_rows for split, ds in splits_ds.items()},
            features=features,
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        return publish_folder(
            staging,
            repo_id,
            repo_type="dataset",
            token=token,
            endpoint=endpoint,
            commit_message=commit_message,
            private=private,
            max_attempts=max_attempts,
            retry_wait=retry_wait,
            sleep=sleep,
        )
    finally:
        if own_staging:
            shutil.rmtree(staging, ignore_errors=True)


def _feature_name(feature: Any) -> str:
    dtype = getattr(feature, "dtype", None)
    return str(dtype) if isinstance(dtype, str) and dtype != "list" else type(feature).__name__
