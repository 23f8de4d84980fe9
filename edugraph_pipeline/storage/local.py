"""The artifact store in a local folder: ``<root>/<asset>/<partition or latest>/``, each with a ``lineage.json``.

A new artifact is written into a fresh version folder and becomes visible in ONE atomic step (`versions.point`),
so a run killed at any moment leaves readers the previous artifact or the new complete one, never a missing or
half-written one (`versions.py` has the rules). The GCS store (`storage.gcs`) has the same API.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edugraph_pipeline.storage.versions import (
    COMMIT_LOCK,
    LEGACY_VERSION,
    LINEAGE_FILE,
    VERSIONS,
    WORK,
    current_version,
    locked,
    missing,
    new_version_id,
    partition_folder,
    point,
    remove_empty,
    remove_stale,
    renamed,
    write_lineage,
)

# The points of `publish` at which `on_step` is called (and a kill test stops the process).
PUBLISH_STEPS = ("staged", "content-written", "lineage-written", "link-created", "committed", "cleaned")


class ArtifactStore:
    def __init__(self, root: Path, *, on_step: Callable[[str], None] | None = None):
        self.root = Path(root)
        self._on_step = on_step or (lambda step: None)  # test hook: see PUBLISH_STEPS

    @property
    def location(self) -> str:
        """The store's own name (`EDUGRAPH_DATA_DIR` resolved): a folder here, a gs:// URL for object storage."""
        return str(self.root)

    @property
    def work_root(self) -> Path:
        """A local folder for scratch space and training work dirs (never published, never uploaded)."""
        return self.root / WORK

    def portable(self, value):
        """`value` (a job description, a lineage field) with every path inside this store's `root` named as the
        store names it (under `location`): the same on every machine, whatever its cache dir. For a local store
        `location` is `root`, so nothing changes."""
        return renamed(value, str(self.root), self.location)

    def asset_dir(self, asset: str, partition: str | None = None) -> Path:
        """The stable path of an artifact (a link to its current version); what readers open and lineage names."""
        return self.root / asset / partition_folder(partition)

    def current(self, asset: str, partition: str | None = None) -> Path:
        """The version folder `asset_dir` points at now: read several files from it to see one version."""
        final = self.asset_dir(asset, partition)
        version = current_version(final)
        if version is None:
            raise missing(final, asset, partition)
        return version

    def lineage(self, asset: str, partition: str | None = None) -> dict:
        try:
            return json.loads((self.current(asset, partition) / LINEAGE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise missing(self.asset_dir(asset, partition) / LINEAGE_FILE, asset, partition) from None

    # ---- what a training machine other than this one may read or write directly (the GCS store answers)

    def remote_source(self, path: str | os.PathLike) -> dict | None:
        """Where in a bucket a committed version's files at local `path` lie (``{"url", "files"}``), for a step
        that reads them there itself; None: `path` is a plain local file (always, for a local store)."""
        return None

    def remote_staging(self, path: str | os.PathLike):
        """The open publication whose staging folder is `path`, as a step that writes straight into the bucket
        sees it (`storage.gcs.RemoteStaging`); None: the step's output must come back to `path` (a local store)."""
        return None

    # ---- publishing

    @contextmanager
    def publish(self, asset: str, partition: str | None, lineage: dict) -> Iterator[Path]:
        """Yield an empty version folder; when the block succeeds it becomes the artifact in one atomic step."""
        final = self.asset_dir(asset, partition)
        versions = final.parent / VERSIONS / final.name
        versions.mkdir(parents=True, exist_ok=True)
        version_id = new_version_id()
        staging = versions / version_id
        lock = versions / f"{version_id}.lock"
        committed = False
        try:
            with locked(lock):  # held while building: tells cleaners this one is alive
                staging.mkdir()
                self._on_step("staged")
                yield staging
                self._on_step("content-written")
                write_lineage(staging, asset, partition, lineage)
                self._on_step("lineage-written")
                with locked(versions / COMMIT_LOCK):
                    self._commit(final, staging)
                    committed = True
                    self._on_step("committed")
                    remove_stale(final, versions, keep=staging)
                self._on_step("cleaned")
        finally:
            lock.unlink(missing_ok=True)
            if not committed:
                shutil.rmtree(staging, ignore_errors=True)
                remove_empty(versions, versions.parent, final.parent)

    def _commit(self, final: Path, version: Path) -> None:
        """Point `final` at `version`: the single atomic step that makes an artifact visible (commit lock held)."""
        if final.exists() and not final.is_symlink():  # the layout before versions: move the plain folder aside
            os.replace(final, version.parent / LEGACY_VERSION)  # readers find it there until the link exists
        point(final, version, on_linked=lambda: self._on_step("link-created"))
