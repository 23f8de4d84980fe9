from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.ontology.parsing import parse_release
from edugraph_pipeline.resources import ArtifactStoreResource, OntologyRepository
from edugraph_pipeline_tests.remotes import SHARED_RELEASES, build_ontology_remote, shared_release_files

requires_shared = pytest.mark.skipif(
    not SHARED_RELEASES.is_dir(), reason=f"reference data {SHARED_RELEASES} is absent (see ../shared/README.md)"
)


def load_shared_release(tag: str) -> Ontology:
    return parse_release(shared_release_files(tag), version=tag, commit="shared")


@pytest.fixture(scope="session")
def ontology_remote(tmp_path_factory) -> Path:
    """A local git repository with all 52 upstream releases as tags (read-only for tests: copy to modify)."""
    if not SHARED_RELEASES.is_dir():
        pytest.skip(f"reference data {SHARED_RELEASES} is absent")
    return build_ontology_remote(tmp_path_factory.mktemp("remote") / "edugraph-ontology")


@pytest.fixture
def pipeline_resources(tmp_path, ontology_remote) -> dict:
    return {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "ontology_repository": OntologyRepository(remote=str(ontology_remote), cache_dir=str(tmp_path / "cache")),
    }


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance
