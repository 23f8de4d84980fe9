"""What every publication asset does around its upload: skip when no repository is configured, turn a failed upload
into a Dagster failure naming the repository, and report the commit the same way (its id is the data version)."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from edugraph_pipeline.publishing import PublicationError, PublishResult


def nothing_to_publish(context, repo_id: str | None, what: str) -> bool:
    """True (and a warning saying so) when `repo_id` is not configured: the asset then materializes nothing."""
    if repo_id:
        return False
    context.log.warning(f"no Hub repository configured for {what} (set EDUGRAPH_HF_REPO): nothing is published")
    return True


def published(context, repo_id: str, upload: Callable[[], PublishResult], **metadata) -> dg.MaterializeResult:
    """Run `upload` and report its commit (`metadata` added to the common fields)."""
    try:
        result = upload()
    except PublicationError as error:
        raise dg.Failure(f"publishing {repo_id} failed: {error}") from error
    context.log.info(f"{repo_id}: {'new commit' if result.created_commit else 'unchanged'} {result.commit_id}")
    return dg.MaterializeResult(
        metadata={
            "repo_id": repo_id,
            "url": dg.MetadataValue.url(result.url),
            "commit_id": result.commit_id,
            "created_commit": result.created_commit,
            "files": len(result.files),
            **metadata,
        },
        data_version=dg.DataVersion(result.commit_id),
    )
