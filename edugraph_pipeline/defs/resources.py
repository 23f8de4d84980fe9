"""The shared resources: where artifacts live and where they are published; `resources()` binds every resource
of the code location (each domain's own resource classes live beside its assets)."""

from __future__ import annotations

import os

import dagster as dg

from edugraph_pipeline import settings
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.training.launchers import launcher_from_settings
from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.storage import ArtifactStore, open_store


class ArtifactStoreResource(dg.ConfigurableResource):
    """The artifact root (`EDUGRAPH_DATA_DIR`): a folder, or gs://<bucket>/<prefix> mirrored under `cache_dir`."""

    data_dir: str
    cache_dir: str = ""  # an object store's local mirror and work dirs (default: storage.default_cache_dir)

    def store(self) -> ArtifactStore:
        return open_store(self.data_dir, cache_dir=self.cache_dir or None)


class HubPublisher(dg.ConfigurableResource):
    """Where and how to publish on the Hugging Face Hub. The token is an `EnvVar`: never shown or logged."""

    repo_id: str = ""  # empty: publication is off
    knowledge_repo: str = ""
    worksheets_repo: str = ""
    endpoint: str = ""
    private: bool = False
    token: str | None = None


TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # what `publishing.hub.resolve_token` reads


def hub_publisher_from_settings() -> HubPublisher:
    """The Hub target of the settings; a repository without a token is a configuration error, raised when the
    code location loads rather than when a run reaches publication (or, worse, silently skips it)."""
    from edugraph_pipeline.publishing import HubTargets

    targets = HubTargets.from_env()
    configured = {
        name: value
        for name, value in (
            ("EDUGRAPH_HF_REPO", targets.model_repo),
            ("EDUGRAPH_HF_KNOWLEDGE_REPO", os.environ.get("EDUGRAPH_HF_KNOWLEDGE_REPO", "").strip()),
            ("EDUGRAPH_HF_WORKSHEETS_REPO", os.environ.get("EDUGRAPH_HF_WORKSHEETS_REPO", "").strip()),
        )
        if value
    }
    if configured and not any(os.environ.get(name) for name in TOKEN_VARIABLES):
        named = ", ".join(f"{name}={value}" for name, value in configured.items())
        raise ValueError(
            f"{named} is set but HF_TOKEN is not: set HF_TOKEN to a Hugging Face write token, or unset "
            f"{' and '.join(configured)} to publish nothing"
        )
    return HubPublisher(
        repo_id=targets.model_repo or "",
        knowledge_repo=targets.knowledge_repo or "",
        worksheets_repo=targets.worksheets_repo or "",
        endpoint=targets.endpoint,
        private=targets.private,
        token=dg.EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None,
    )


def from_env(name: str, default, *, kind: type = str):
    """`dg.EnvVar(name)` when the variable is set (checked here, resolved when a run starts, shown as such in the
    launchpad and the run's config), else the setting's default. A malformed value fails now, naming it."""
    if name not in os.environ:
        return default
    if kind is int:
        settings.integer(name)
        return dg.EnvVar.int(name)
    return dg.EnvVar(name)


def default_resources() -> dict[str, dg.ConfigurableResource]:
    cache_dir = from_env("EDUGRAPH_CACHE_DIR", str(settings.cache_dir()))
    return {
        "artifact_store": ArtifactStoreResource(
            data_dir=from_env("EDUGRAPH_DATA_DIR", settings.data_location()), cache_dir=cache_dir
        ),
        "ontology_repository": OntologyRepository(
            remote=from_env("EDUGRAPH_ONTOLOGY_REPO", settings.setting("EDUGRAPH_ONTOLOGY_REPO")), cache_dir=cache_dir
        ),
        "content_source": ContentSource(
            source=from_env("EDUGRAPH_CONTENT_SOURCE", settings.setting("EDUGRAPH_CONTENT_SOURCE")),
            sample_count=from_env("EDUGRAPH_SAMPLE_COUNT", settings.integer("EDUGRAPH_SAMPLE_COUNT"), kind=int),
            sample_seed=from_env("EDUGRAPH_SAMPLE_SEED", settings.integer("EDUGRAPH_SAMPLE_SEED"), kind=int),
            cache_dir=cache_dir,
            label_field=from_env("EDUGRAPH_CONTENT_LABEL_FIELD", settings.setting("EDUGRAPH_CONTENT_LABEL_FIELD")),
            strict=from_env("EDUGRAPH_CONTENT_STRICT", settings.setting("EDUGRAPH_CONTENT_STRICT")),
        ),
        "training_launcher": launcher_from_settings(),
        "hub": hub_publisher_from_settings(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
