"""The shared resources: where artifacts live and where they are published; `resources()` binds every resource
of the code location (each domain's own resource classes live beside its assets).

Every field whose variable is set is bound as ``dg.EnvVar(name)`` (resolved when a run starts, shown as such in
the launchpad and the run's config); an unset one takes its setting's default as a plain value. What is wrong is
reported when the code location loads, naming the variable.
"""

from __future__ import annotations

import dagster as dg

from edugraph_pipeline import settings
from edugraph_pipeline.defs.env import bound
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.training.launchers import launcher_from_settings
from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.publishing import HubTargets, normalise_endpoint
from edugraph_pipeline.storage import ArtifactStore, open_store

HUB_REPO_VARIABLES = ("EDUGRAPH_HF_REPO", "EDUGRAPH_HF_KNOWLEDGE_REPO", "EDUGRAPH_HF_WORKSHEETS_REPO")


class ArtifactStoreResource(dg.ConfigurableResource):
    """The artifact root (`EDUGRAPH_DATA_DIR`): a folder, or gs://<bucket>/<prefix> mirrored under `cache_dir`."""

    data_dir: str
    cache_dir: str = ""  # an object store's local mirror and work dirs (default: settings.store_cache_dir)

    def store(self) -> ArtifactStore:
        return open_store(self.data_dir, cache_dir=self.cache_dir or None)


class HubPublisher(dg.ConfigurableResource):
    """Where and how to publish on the Hugging Face Hub. The token is an `EnvVar`: never shown or logged."""

    repo_id: str = ""  # empty: publication is off
    knowledge_repo: str = ""
    worksheets_repo: str = ""
    endpoint: str = ""  # HF_ENDPOINT
    private: str = ""  # EDUGRAPH_HF_PRIVATE as written (empty: its default); `is_private` parses it
    token: str | None = None
    code_version: str = ""  # EDUGRAPH_CODE_VERSION for the model card (empty: the git commit)

    @property
    def is_private(self) -> bool:
        return settings.flag("EDUGRAPH_HF_PRIVATE", self.private)


def hub_publisher_from_settings() -> HubPublisher:
    """The Hub target of the settings; a repository without a token is a configuration error, raised when the
    code location loads rather than when a run reaches publication (or, worse, silently skips it)."""
    configured = {name: settings.setting(name).strip() for name in HUB_REPO_VARIABLES if settings.setting(name).strip()}
    token_variable = settings.hub_token_variable()
    if configured and token_variable is None:
        named = ", ".join(f"{name}={value}" for name, value in configured.items())
        raise ValueError(
            f"{named} is set but HF_TOKEN is not: set HF_TOKEN to a Hugging Face write token, or unset "
            f"{' and '.join(configured)} to publish nothing"
        )
    settings.flag("EDUGRAPH_HF_PRIVATE")  # a malformed value fails now, naming the variable
    normalise_endpoint(settings.setting("HF_ENDPOINT"))
    # The dataset repositories default to the model repository's namespace: derived now, from today's values.
    targets = HubTargets.of(*(settings.setting(name) for name in HUB_REPO_VARIABLES))
    return HubPublisher(
        repo_id=bound("EDUGRAPH_HF_REPO", targets.model_repo or ""),
        knowledge_repo=bound("EDUGRAPH_HF_KNOWLEDGE_REPO", targets.knowledge_repo or ""),
        worksheets_repo=bound("EDUGRAPH_HF_WORKSHEETS_REPO", targets.worksheets_repo or ""),
        endpoint=bound("HF_ENDPOINT", settings.setting("HF_ENDPOINT")),
        private=bound("EDUGRAPH_HF_PRIVATE", settings.default("EDUGRAPH_HF_PRIVATE")),
        token=dg.EnvVar(token_variable) if token_variable else None,
        code_version=bound("EDUGRAPH_CODE_VERSION", ""),
    )


def default_resources() -> dict[str, dg.ConfigurableResource]:
    cache_dir = bound("EDUGRAPH_CACHE_DIR", str(settings.cache_dir()))
    return {
        "artifact_store": ArtifactStoreResource(
            data_dir=bound("EDUGRAPH_DATA_DIR", settings.data_location()), cache_dir=cache_dir
        ),
        "ontology_repository": OntologyRepository(
            remote=bound("EDUGRAPH_ONTOLOGY_REPO", settings.setting("EDUGRAPH_ONTOLOGY_REPO")), cache_dir=cache_dir
        ),
        "content_source": ContentSource(
            source=bound("EDUGRAPH_CONTENT_SOURCE", settings.setting("EDUGRAPH_CONTENT_SOURCE")),
            sample_count=bound("EDUGRAPH_SAMPLE_COUNT", settings.integer("EDUGRAPH_SAMPLE_COUNT"), kind=int),
            sample_seed=bound("EDUGRAPH_SAMPLE_SEED", settings.integer("EDUGRAPH_SAMPLE_SEED"), kind=int),
            cache_dir=cache_dir,
            label_field=bound("EDUGRAPH_CONTENT_LABEL_FIELD", settings.setting("EDUGRAPH_CONTENT_LABEL_FIELD")),
            strict=bound("EDUGRAPH_CONTENT_STRICT", settings.setting("EDUGRAPH_CONTENT_STRICT")),
        ),
        "training_launcher": launcher_from_settings(),
        "hub": hub_publisher_from_settings(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
