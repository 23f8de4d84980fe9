"""Where artifacts live: a local folder (`local`) or ``gs://<bucket>/<prefix>`` (`gcs`, mirrored locally), with
one API; `versions` holds the version rules both follow, `layout` every asset's name and files.

`open_store` picks the store of a location (`EDUGRAPH_DATA_DIR`); the names below are what code outside this
package imports (``from edugraph_pipeline.storage import ArtifactStore``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edugraph_pipeline import settings
from edugraph_pipeline.settings import url_scheme
from edugraph_pipeline.storage.local import PUBLISH_STEPS, ArtifactStore
from edugraph_pipeline.storage.versions import (
    COMMIT_LOCK,
    LEGACY_VERSION,
    LINEAGE_FILE,
    UNPARTITIONED,
    VERSIONS,
    WORK,
    file_sha256,
    folder_sha256,
    lineage_record,
    new_version_id,
    renamed,
    write_lineage,
)

OBJECT_STORE_SCHEMES = ("gs",)


def open_store(location: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
               on_step: Callable[[str], None] | None = None,
               transferred: dict[str, int] | None = None) -> ArtifactStore:
    """The artifact store at `location` (`EDUGRAPH_DATA_DIR`): a local folder, or ``gs://<bucket>/<prefix>``
    mirrored under `cache_dir` (default: `settings.store_cache_dir`), counting the bytes it moves into
    `transferred` when given. Any other URL is an error, never a local folder."""
    scheme = url_scheme(location)
    if scheme is None:
        return ArtifactStore(Path(location).expanduser().resolve(), on_step=on_step)
    if scheme not in OBJECT_STORE_SCHEMES or not os.fspath(location).startswith("gs://"):
        raise ValueError(
            f"EDUGRAPH_DATA_DIR={os.fspath(location)!r}: not a local folder and not a supported object store URL "
            f"(expected gs://<bucket>/<prefix>)"
        )
    from edugraph_pipeline.storage.gcs import GcsArtifactStore  # google-cloud-storage only where it is used

    url = os.fspath(location)
    return GcsArtifactStore(url, cache_dir=cache_dir or settings.store_cache_dir(url), on_step=on_step,
                            transferred=transferred)


__all__ = [
    "COMMIT_LOCK",
    "LEGACY_VERSION",
    "LINEAGE_FILE",
    "OBJECT_STORE_SCHEMES",
    "PUBLISH_STEPS",
    "UNPARTITIONED",
    "VERSIONS",
    "WORK",
    "ArtifactStore",
    "file_sha256",
    "folder_sha256",
    "lineage_record",
    "new_version_id",
    "open_store",
    "renamed",
    "url_scheme",
    "write_lineage",
]
