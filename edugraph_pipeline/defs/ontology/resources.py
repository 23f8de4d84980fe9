"""The ontology release remote."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from edugraph_pipeline.ontology.parsing import is_ontology_file
from edugraph_pipeline.releases import ReleaseSnapshot, ReleaseTag, list_release_tags, read_release, redact_url


class OntologyRepository(dg.ConfigurableResource):
    """The git remote whose `vX.Y.Z` tags are ontology releases (`EDUGRAPH_ONTOLOGY_REPO`)."""

    remote: str
    cache_dir: str

    @classmethod
    def from_settings(cls) -> OntologyRepository:
        """The remote the settings name, with plain values (for the CLI, which runs outside Dagster)."""
        from edugraph_pipeline import settings

        return cls(remote=settings.setting("EDUGRAPH_ONTOLOGY_REPO"), cache_dir=str(settings.cache_dir()))

    @property
    def display_remote(self) -> str:
        return redact_url(self.remote)

    def list_releases(self) -> list[ReleaseTag]:
        return list_release_tags(self.remote)

    def read(self, tag: str) -> ReleaseSnapshot:
        # Only top-level ontology files: the upstream repository also holds docs and libraries in folders.
        return read_release(
            self.remote,
            tag,
            Path(self.cache_dir).expanduser(),
            select=lambda path: "/" not in path and is_ontology_file(path),
        )
