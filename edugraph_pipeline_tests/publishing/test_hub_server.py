"""The local Hub stand-in itself: downloads with ranges, privacy, auth, history."""

from __future__ import annotations

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from edugraph_pipeline_tests.conftest import TOKEN

pytestmark = pytest.mark.filterwarnings("ignore:Use .content=<...>. to upload raw bytes:DeprecationWarning")


def test_resolve_headers_ranges_and_history(hub, tmp_path):
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo("org/m")
    weights = bytes(range(256)) * 40
    api.create_commit("org/m", [CommitOperationAdd("w.safetensors", weights), CommitOperationAdd("c.json", b"{}")],
                      commit_message="one")
    api.create_commit("org/m", [CommitOperationAdd("c.json", b'{"a": 1}')], commit_message="two")
    assert [c.title for c in api.list_repo_commits("org/m")] == ["two", "one", "initial commit"]
    head = hub.head("org/m")

    url = f"{hub.endpoint}/org/m/resolve/main/w.safetensors"
    full = httpx2.head(url)
    assert full.headers["X-Repo-Commit"] == head and full.headers["Content-Length"] == str(len(weights))
    assert full.headers["X-Linked-Size"] == str(len(weights)) and full.headers["X-Linked-Etag"].strip('"') == \
        hub.repo("org/m").commits[head].files["w.safetensors"].lfs_oid
    part = httpx2.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == weights[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(weights)}"
    assert httpx2.get(url, headers={"Range": "bytes=-5"}).content == weights[-5:]

    # An old revision is still downloadable by commit id.
    first = api.list_repo_commits("org/m")[1].commit_id
    path = hf_hub_download("org/m", "c.json", revision=first, endpoint=hub.endpoint, cache_dir=tmp_path, token=False)
    assert open(path, "rb").read() == b"{}"
    missing = httpx2.get(f"{hub.endpoint}/org/m/resolve/main/nope.txt")
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"


def test_auth_and_privacy(hub):
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo("org/secret", private=True, repo_type="dataset")
    assert hub.repo("org/secret", "dataset").private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=False).dataset_info("org/secret")
    assert api.dataset_info("org/secret").private
    with pytest.raises(HfHubHTTPError) as caught:
        HfApi(endpoint=hub.endpoint, token="hf_wrongwrongwrongwrongwrong").create_repo("org/other")
    assert caught.value.response.status_code == 401
    anonymous = httpx2.post(f"{hub.endpoint}/api/repos/create", json={"name": "x", "organization": "org"})
    assert anonymous.status_code == 401
    assert all(r.headers.get("authorization") in (None, "<redacted>") for r in hub.requests)


def test_fault_injection_counts(hub):
    hub.fail("repo_info", times=2, status=500)
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo("org/m")
    statuses = [httpx2.get(f"{hub.endpoint}/api/models/org/m").status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    with pytest.raises(ValueError):
        hub.fail("nonsense")
