"""The ontology as upstream has it in 2026 (`../shared/ontology-2026`), for tests that need a release with
specialization and composition apart.

It is no release tag (see its README): tests tag it v0.26.0, the first release upstream applies label eligibility
to and the structure these files have (v0.26-v0.29); v0.30.0 would be wrong, these files lack its two additions.
"""

from __future__ import annotations

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.ontology.parsing import parse_release
from edugraph_pipeline_tests.conftest import skip_or_fail
from edugraph_pipeline_tests.kit.remotes import SHARED_DIR

SHARED_ONTOLOGY_2026 = SHARED_DIR / "ontology-2026"
TAG_2026 = "v0.26.0"


def ontology_2026_files() -> dict[str, bytes]:
    """The folder's files as a release tree holds them (Turtle, README, LICENSE)."""
    if not SHARED_ONTOLOGY_2026.is_dir():
        skip_or_fail(f"reference data {SHARED_ONTOLOGY_2026} is absent (see ../shared/README.md)")
    return {path.name: path.read_bytes() for path in sorted(SHARED_ONTOLOGY_2026.iterdir()) if path.is_file()}


def load_ontology_2026(tag: str = TAG_2026) -> Ontology:
    return parse_release(ontology_2026_files(), version=tag, commit="shared")
