"""Where artifacts live: ``<EDUGRAPH_DATA_DIR>/<asset>/<partition or latest>/``, each with a ``lineage.json``.

Every artifact is built in a hidden sibling folder and renamed into place only when complete, so a failed or
killed materialization never leaves a half-written artifact and never damages the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

LINEAGE_FILE = "lineage.json"
UNPARTITIONED = "latest"  # the folder of an unpartitioned asset (models: the newest one)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        key = partition or UNPARTITIONED
        if not key or key.startswith(".") or "/" in key or "\\" in key:
            raise ValueError(f"partition key {key!r} cannot name a folder")
        return self.root / asset / key

    def lineage(self, asset: str, partition: str | None = None) -> dict:
        path = self.asset_dir(asset, partition) / LINEAGE_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: materialize {asset}"
                + (f" for partition {partition}" if partition else "")
                + " first"
            )
        return json.loads(path.read_text(encoding="utf-8"))

    @contextmanager
    def publish(self, asset: str, partition: str | None, lineage: dict) -> Iterator[Path]:
        """Yield an empty staging folder; on success it replaces the artifact folder in one rename."""
        final = self.asset_dir(asset, partition)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.parent / f".staging-{final.name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            yield staging
            record = {
                "asset": asset,
                "partition": partition,
                "created_at": datetime.now(timezone.utc).isoformat(),
                **lineage,
            }
            (staging / LINEAGE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
            retired = final.parent / f".retired-{final.name}-{uuid.uuid4().hex[:8]}"
            if final.exists():
                os.replace(final, retired)
            os.replace(staging, final)
            shutil.rmtree(retired, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
