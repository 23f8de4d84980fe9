from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

import edugraph_pipeline.defs
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.ontology.parsing import parse_release
from edugraph_pipeline_tests.kit.hub_server import HubServer, disable_xet, fast_hf_retries, no_phone_home
from edugraph_pipeline_tests.kit.remotes import SHARED_RELEASES, build_ontology_remote, shared_release_files

# Set by .ci/run: there a missing prerequisite of a flagship test (Docker engine, Chromium, llama.cpp build, the
# reference releases) fails that test instead of skipping it, so CI cannot go green without them.
CI_ENV = "EDUGRAPH_CI"
# Every asset of the code location, without calling its definitions function (which binds resources from the
# environment): tests bind their own resources.
PIPELINE_ASSETS = dg.load_assets_from_package_module(edugraph_pipeline.defs)


def skip_or_fail(reason: str) -> None:
    """Skip the test for `reason`, or fail it where CI must run it (`EDUGRAPH_CI=1`)."""
    if os.environ.get(CI_ENV, "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} ({CI_ENV} is set: CI must run this test)", pytrace=False)
    pytest.skip(reason)


def require_shared(path: Path = SHARED_RELEASES) -> Path:
    """`path` (reference data under ../shared) if it exists; else skip the test, or fail it under EDUGRAPH_CI=1."""
    if not path.exists():
        skip_or_fail(f"reference data {path} is absent (see ../shared/README.md)")
    return path


@pytest.fixture(scope="session")
def shared_releases() -> Path:
    """`../shared/ontology-releases` (skip or fail if absent). Session-scoped, so that it is checked before any
    module fixture of a `requires_shared` test reads the releases."""
    return require_shared()


# A test that reads ../shared: skipped where it is absent, failed under EDUGRAPH_CI=1 (a skipif mark could only skip).
requires_shared = pytest.mark.usefixtures("shared_releases")


def load_shared_release(tag: str) -> Ontology:
    return parse_release(shared_release_files(require_shared(SHARED_RELEASES / tag)), version=tag, commit="shared")


@pytest.fixture(scope="session")
def ontology_remote(tmp_path_factory) -> Path:
    """A local git repository with all 52 upstream releases as tags (read-only for tests: copy to modify)."""
    if not SHARED_RELEASES.is_dir():
        skip_or_fail(f"reference data {SHARED_RELEASES} is absent")
    return build_ontology_remote(tmp_path_factory.mktemp("remote") / "edugraph-ontology")


@pytest.fixture
def pipeline_resources(tmp_path, ontology_remote) -> dict:
    return {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "ontology_repository": OntologyRepository(remote=str(ontology_remote), cache_dir=str(tmp_path / "cache")),
    }


def dag_resources(tmp_path: Path, ontology_remote: Path, hub, *, sample_count: int, **hub_repos) -> dict:
    """The resources of a whole-DAG test: a store under `tmp_path`, the local ontology remote, sample content,
    subprocess training and the local Hub (`hub_repos`: HubPublisher's repository ids)."""
    from edugraph_pipeline.defs.resources import HubPublisher
    from edugraph_pipeline.defs.training.launchers import LocalLauncher
    from edugraph_pipeline.defs.worksheets.resources import ContentSource

    return {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "ontology_repository": OntologyRepository(remote=str(ontology_remote), cache_dir=str(tmp_path / "cache")),
        "content_source": ContentSource(source="sample", sample_count=sample_count, sample_seed=3),
        "training_launcher": LocalLauncher(),
        "hub": HubPublisher(endpoint=hub.endpoint, token=dg.EnvVar("HF_TOKEN"), **hub_repos),
    }


@pytest.fixture(scope="session")
def docker_client():
    """A client of a Docker engine that answers (`docker/start-local-engine.sh` starts one offline)."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as error:  # noqa: BLE001 - any failure means "no engine"
        skip_or_fail(f"no Docker engine answers ({type(error).__name__}: {error}); run docker/start-local-engine.sh")
    return client


REPO_ROOT = Path(__file__).resolve().parents[1]
# The offline Debian base that docker/start-local-engine.sh imports (no registry is reachable here).
TEST_BASE_IMAGE = os.environ.get("EDUGRAPH_TEST_BASE_IMAGE", "edugraph-test-base:bookworm")


def build_source_only_image(client, dockerfile: str, tag: str, context: Path) -> str:
    """Build ``docker/<dockerfile>`` with ``INSTALL=none`` (the project source only) on the offline test base."""
    import shutil

    import docker

    try:
        client.images.get(TEST_BASE_IMAGE)
    except docker.errors.ImageNotFound:
        skip_or_fail(f"base image {TEST_BASE_IMAGE} is missing; run docker/start-local-engine.sh")
    shutil.copy(REPO_ROOT / "docker" / dockerfile, context / "Dockerfile")
    shutil.copy(REPO_ROOT / "pyproject.toml", context / "pyproject.toml")
    shutil.copytree(
        REPO_ROOT / "edugraph_pipeline", context / "edugraph_pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    client.images.build(
        path=str(context), tag=tag, buildargs={"BASE": TEST_BASE_IMAGE, "INSTALL": "none"}, network_mode="none",
        rm=True,
    )
    return tag


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


# Shaped like a real user access token, so that a leak would also be caught by pattern-based scrubbing checks.
TOKEN = "hf_EduGraphTestToken0123456789abcdefXYZ"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A started local Hub with Xet off (classic LFS), instant huggingface_hub retries, and an isolated HF cache."""
    import huggingface_hub.constants as hf_constants

    # The offline flag is read once at import; whichever test imported huggingface_hub first must not decide.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    disable_xet(monkeypatch)
    fast_hf_retries(monkeypatch)
    no_phone_home(monkeypatch)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with HubServer(token=TOKEN) as server:
        yield server
