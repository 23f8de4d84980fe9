"""The content source resource: which worksheet content release the dataset is built from, and the rules it is read
under (the label field, fail-closed or skip-and-count)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.releases import redact_url
from edugraph_pipeline.worksheets.content_release import ContentLimits, ContentRelease
from edugraph_pipeline.worksheets.content_sources import read_content
from edugraph_pipeline.worksheets.contract import is_strict, parse_strict
from edugraph_pipeline.worksheets.imagefolder import AUTO, LABEL_FIELD_CHOICES
from edugraph_pipeline.worksheets.release_series import SAMPLE, ContentReleaseRef, list_release_refs


class ContentSource(dg.ConfigurableResource):
    """`EDUGRAPH_CONTENT_SOURCE`: `sample`, a folder, a `.tar.gz` (path or URL), a git remote of releases, or a Hub
    dataset repo (`hf://datasets/<namespace>/<name>[@<revision>]`; without a revision its vX.Y.Z and vX.Y.Z-NN tags
    are releases)."""

    source: str = Field(default=SAMPLE, description="sample | folder | .tar.gz path or URL | git+<remote> | hf://...")
    sample_count: int = Field(default=200, description="Images generated when the source is 'sample'.")
    sample_seed: int = Field(default=0, description="Seed of the sample generator.")
    validation_fraction: float = Field(default=0.1, description="Share of problems in the validation split.")
    max_download_mb: int = Field(default=2048, description="Largest release archive downloaded from a URL.")
    cache_dir: str = Field(default="", description="Where git mirrors and Hub snapshots of content are kept.")
    label_field: str = Field(
        default=AUTO, description="Label field of metadata.jsonl rows: auto (what every row uses), labels or tags."
    )
    strict: str = Field(
        default="",
        description="Fail a release that breaks the ingestion contract (true), or skip and count (false); empty: "
        "strict for published releases (Hub, git, archives), lenient for the sample generator and a plain folder.",
    )

    @property
    def display_source(self) -> str:
        return redact_url(self.source)

    def list_release_refs(self) -> list[ContentReleaseRef]:
        """Known releases, newest last, each with the commit its tag points at (git and Hub series)."""
        return list_release_refs(self.source)

    def list_releases(self) -> list[str]:
        """Known releases as runs name them, newest last: git tags, archive names in a folder of releases, or
        `tag@commit` of a Hub dataset's tags (so a moved tag is a new release); [] for a source of one release."""
        return [ref.request for ref in self.list_release_refs()]

    def rules(self) -> tuple[str, bool]:
        """(label field, strict) for this source; a value that is neither fails naming it."""
        if self.label_field not in LABEL_FIELD_CHOICES:
            raise ValueError(
                f"EDUGRAPH_CONTENT_LABEL_FIELD={self.label_field!r}: expected one of {', '.join(LABEL_FIELD_CHOICES)}"
            )
        return self.label_field, is_strict(self.source, parse_strict(self.strict))

    def sample_settings(self, sample_count: int | None = None, sample_seed: int | None = None) -> tuple[int, int]:
        """The sample generator's count and seed for one run: the run's own where it sets them, else this
        resource's (the one place a run-config override of them is resolved)."""
        return (
            self.sample_count if sample_count is None else sample_count,
            self.sample_seed if sample_seed is None else sample_seed,
        )

    def read(
        self,
        work_dir: Path,
        ontology: Ontology,
        release: str | None = None,
        *,
        sample_count: int | None = None,
        sample_seed: int | None = None,
    ) -> ContentRelease:
        """The release's items; `sample_count`/`sample_seed` override this resource's for one run."""
        limits = ContentLimits(max_download_bytes=self.max_download_mb * 1024 * 1024)
        sample_count, sample_seed = self.sample_settings(sample_count, sample_seed)
        label_field, _ = self.rules()
        return read_content(
            self.source,
            work_dir,
            ontology,
            release=release,
            sample_count=sample_count,
            sample_seed=sample_seed,
            limits=limits,
            cache_dir=Path(self.cache_dir).expanduser() if self.cache_dir else None,
            label_field=label_field,
        )
