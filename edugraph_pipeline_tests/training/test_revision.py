"""The base model's pinned revision against a hostile world: a local base folder that changed or is gone, a Hub
repository or revision the (local) Hub cannot resolve, and a Hub that answers something other than a commit sha."""

from __future__ import annotations

import dataclasses

import pytest
from huggingface_hub import HfApi

from edugraph_pipeline.training.revision import RevisionError, folder_revision, pinned_folder, resolve_revision
from edugraph_pipeline_tests.conftest import TOKEN

REPO = "edugraph-test/base-model"


def base_folder(root):
    folder = root / "base"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen3_vl"}', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def test_a_local_base_folder_that_changed_or_is_gone_fails_naming_it(tmp_path):
    folder = base_folder(tmp_path)
    revision = resolve_revision(str(folder))
    assert revision == folder_revision(folder) and revision.startswith("sha256:")
    assert pinned_folder(str(folder), revision) == str(folder)
    (folder / "model.safetensors").write_bytes(b"\1" * 64)  # other weights under the same name
    with pytest.raises(RevisionError) as changed:
        pinned_folder(str(folder), revision)
    assert f"base model folder {folder} changed since base_model recorded it ({revision}, now sha256:" in str(changed.value)
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "model-00002.safetensors").write_bytes(b"\0")  # a weight file added
    with pytest.raises(RevisionError, match="changed since base_model recorded it"):
        pinned_folder(str(folder), revision)
    gone = tmp_path / "moved-away"
    folder.rename(gone)
    with pytest.raises(RevisionError, match=rf"base model folder {folder} is gone \(base_model recorded its content "
                                           rf"{revision}\)"):
        pinned_folder(str(folder), revision)


@pytest.fixture
def base_repo(hub):
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo(REPO)
    api.upload_file(path_or_fileobj=b'{"model_type": "qwen3_vl"}', path_in_repo="config.json", repo_id=REPO)
    return api


def test_a_hub_base_resolves_to_the_commit_main_points_at(hub, base_repo):
    assert resolve_revision(REPO, endpoint=hub.endpoint) == hub.head(REPO)


def test_a_revision_the_hub_cannot_resolve_fails_naming_repo_and_revision(hub, base_repo):
    missing = "0" * 40  # a well-formed commit the repository does not have (rewritten history, another repo)
    with pytest.raises(RevisionError) as failed:
        pinned_folder(REPO, missing, endpoint=hub.endpoint)
    assert f"base model '{REPO}'@{missing}: the Hub cannot provide this revision" in str(failed.value)
    assert "materialize base_model again" in str(failed.value)
    with pytest.raises(RevisionError, match=r"base model 'edugraph-test/absent'@main: cannot resolve its Hub commit"):
        resolve_revision("edugraph-test/absent", endpoint=hub.endpoint)
    hub.fail("repo_info", times=None, status=503)
    with pytest.raises(RevisionError, match=rf"base model '{REPO}'@main: cannot resolve its Hub commit"):
        resolve_revision(REPO, endpoint=hub.endpoint)


@pytest.mark.parametrize("answer", ["../escaped", "A" * 40, "abc123"])
def test_a_hub_answering_no_commit_sha_is_refused(hub, base_repo, answer):
    repo = hub.repo(REPO)
    repo.commits[answer] = dataclasses.replace(repo.commits[repo.branches["main"]], oid=answer)
    repo.branches["main"] = answer
    with pytest.raises(RevisionError, match=rf"base model '{REPO}'@main: the Hub answered '{answer}', not a commit sha"):
        resolve_revision(REPO, endpoint=hub.endpoint)
