"""Which Hub repositories the pipeline publishes to: the model repository, and the dataset repositories, which
default to the model repository's namespace.

Plain values in, plain values out: the caller (the Hub resource, from the settings) says what is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KNOWLEDGE_REPO_NAME = "edugraph-knowledge"
WORKSHEETS_REPO_NAME = "edugraph-worksheets"
_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")


def is_repo_id(repo_id: str) -> bool:
    """Whether `repo_id` looks like ``namespace/name``."""
    return bool(_REPO_ID.fullmatch(repo_id))


def namespace_of(repo_id: str | None) -> str | None:
    return repo_id.split("/")[0] if repo_id and "/" in repo_id else None


@dataclass(frozen=True)
class HubTargets:
    """Where to publish. `model_repo` None: publishing is off; a dataset repository None: that dataset is not
    published (no repository configured and no model namespace to default to)."""

    model_repo: str | None
    knowledge_repo: str | None
    worksheets_repo: str | None

    @classmethod
    def of(cls, model_repo: str = "", knowledge_repo: str = "", worksheets_repo: str = "") -> HubTargets:
        """The targets for the configured values (empty: not configured)."""
        model = model_repo.strip() or None
        namespace = namespace_of(model)

        def dataset_repo(configured: str, default_name: str) -> str | None:
            if configured.strip():
                return configured.strip()
            return f"{namespace}/{default_name}" if namespace else None

        return cls(
            model_repo=model,
            knowledge_repo=dataset_repo(knowledge_repo, KNOWLEDGE_REPO_NAME),
            worksheets_repo=dataset_repo(worksheets_repo, WORKSHEETS_REPO_NAME),
        )
