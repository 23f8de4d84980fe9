"""The base model's revision: resolved once (by the `base_model` asset), then required by every load of the base.

A Hub repo id resolves to the commit sha its ``main`` points at now; both training stages (wherever they run),
the merge and everything after load that commit, so a push to ``main`` between two steps cannot mix two models.
A local folder resolves to the sha256 of its config and weights, and a later load fails if the folder changed or
is gone. What the Hub answers is outside input: a commit that is not a 40-hex sha is refused, and a revision it
cannot resolve fails naming the repository and the revision.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edugraph_pipeline.commits import checked_commit
from edugraph_pipeline.redaction import redact
from edugraph_pipeline.storage import file_sha256

FOLDER_HASH_PREFIX = "sha256:"
HUB_REVISION = "main"  # what a Hub base model is pinned from


class RevisionError(RuntimeError):
    """The base model's revision cannot be resolved, or the base changed since it was."""


def is_local(model_id: str) -> bool:
    return Path(model_id).expanduser().is_dir()


def folder_revision(folder: str | Path) -> str:
    """``sha256:`` over the names and content hashes of ``config.json`` and the ``*.safetensors`` files."""
    path = Path(folder)
    digest = hashlib.sha256()
    for name in ["config.json"] + sorted(p.name for p in path.glob("*.safetensors")):
        file = path / name
        if file.exists():
            digest.update(name.encode())
            digest.update(file_sha256(file).encode())
    return FOLDER_HASH_PREFIX + digest.hexdigest()


def resolve_revision(model_id: str, endpoint: str | None = None) -> str:
    """The revision to pin: a local folder's content hash, or the Hub commit ``main`` points at now (`endpoint`
    None: huggingface_hub's own)."""
    if is_local(model_id):
        return folder_revision(Path(model_id).expanduser())
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint).model_info(model_id, revision=HUB_REVISION)
    except Exception as exc:
        detail = redact(f"{type(exc).__name__}: {exc}").splitlines()[0]
        raise RevisionError(
            f"base model {model_id!r}@{HUB_REVISION}: cannot resolve its Hub commit ({detail}). Check the repo id, "
            f"HF_ENDPOINT and HF_TOKEN, or point EDUGRAPH_BASE_MODEL at a local folder."
        ) from None
    return checked_commit(f"base model {model_id!r}@{HUB_REVISION}", info.sha, RevisionError)




def pinned_folder(model_id: str, revision: str | None, endpoint: str | None = None) -> str:
    """A local folder holding exactly `revision` of `model_id`: the Hub commit's snapshot (downloaded once into
    the HF cache; `endpoint` None: huggingface_hub's own), or the verified local folder itself. Loading from the
    folder keeps every later library call (PEFT's config checks when it saves an adapter, for one) off the Hub's
    moving ``main``."""
    if revision is None:
        return model_id
    if is_local(model_id):
        now = folder_revision(Path(model_id).expanduser())
        if now != revision:
            raise RevisionError(
                f"base model folder {model_id} changed since base_model recorded it ({revision}, now {now}): "
                f"materialize base_model again"
            )
        return model_id
    if revision.startswith(FOLDER_HASH_PREFIX):
        raise RevisionError(
            f"base model folder {model_id} is gone (base_model recorded its content {revision}): restore it or "
            "materialize base_model again"
        )
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model_id, revision=revision, endpoint=endpoint)
    except Exception as exc:
        detail = redact(f"{type(exc).__name__}: {exc}").splitlines()[0]
        raise RevisionError(
            f"base model {model_id!r}@{revision}: the Hub cannot provide this revision ({detail}); materialize "
            "base_model again to pin the current one"
        ) from None
