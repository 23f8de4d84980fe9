"""Content releases from a Hub dataset repository (`hf://datasets/...`), against the local Hub server and the real
huggingface_hub client: tags resolved to commits, only release files downloaded, the release's own splits kept,
offline mode, the content sensor on the repo's tags, the errors that name what is missing, and a hostile Hub
(commits that are no sha, a release over the size cap, sizes that lie, paths that leave the release)."""

import dataclasses
import json
import re

import dagster as dg
import pytest
from huggingface_hub import HfApi

from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.defs.worksheets.sensors import CONTENT_RELEASE_TAG
from edugraph_pipeline.worksheets.content_release import ContentSourceError
from edugraph_pipeline.worksheets.content_sources import read_content
from edugraph_pipeline.worksheets.dataset import SPLIT_KEPT, build_dataset, split_overlap
from edugraph_pipeline.worksheets.hub_source import (
    MAX_SNAPSHOT_BYTES,
    HubAccess,
    HubSourceError,
    download_release,
    list_release_refs,
)
from edugraph_pipeline_tests.conftest import TOKEN
from edugraph_pipeline_tests.worksheets import test_worksheet_asset as asset_tests
from edugraph_pipeline_tests.worksheets.test_worksheet_asset import (
    TAG,
    instance_with_partitions,
    materialize,
    sensor_tick,
)
from edugraph_pipeline_tests.worksheets.worksheet_helpers import write_imagefolder_release

REPO = "edugraph-test/edugraph-exercises"
SOURCE = f"hf://datasets/{REPO}"
data_dir = asset_tests.data_dir  # the fixture: an artifact store holding ontology v0.21.0


@pytest.fixture
def published(hub, tmp_path, monkeypatch, real_tag_sets):
    """A dataset repo with release v1.0.0 (8 problems: 6 train, 2 validation) and v1.1.0 (4 more problems)."""
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo(REPO, repo_type="dataset")
    first = tmp_path / "release-1"
    written = write_imagefolder_release(first, real_tag_sets[:8])
    (first / "README.md").write_text("# edugraph-exercises\n", encoding="utf-8")
    (first / "provenance").mkdir()
    (first / "provenance" / "rows.jsonl").write_text("{}\n", encoding="utf-8")
    api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=first, commit_message="release 1")
    api.create_tag(REPO, repo_type="dataset", tag="v1.0.0")
    second = tmp_path / "release-2"
    write_imagefolder_release(second, real_tag_sets[:12])
    api.upload_folder(repo_id=REPO, repo_type="dataset", folder_path=second, commit_message="release 2")
    api.create_tag(REPO, repo_type="dataset", tag="v1.1.0")
    refs = {ref.name: ref.target_commit for ref in api.list_repo_refs(REPO, repo_type="dataset").tags}
    return {"api": api, "refs": refs, "written": written}


def test_a_tag_is_read_at_its_commit_with_only_the_release_files(hub, published, tmp_path, ontology):
    cache = tmp_path / "cache"
    release = read_content(f"{SOURCE}@v1.0.0", tmp_path / "work", ontology, cache_dir=cache)
    commit = published["refs"]["v1.0.0"]
    assert release.version == commit and release.revision == "v1.0.0"
    assert release.source == f"{SOURCE}@v1.0.0" and len(release.skipped) == 0
    assert len(release.items) == 16  # v1.0.0's 8 problems, not v1.1.0's 12
    snapshot = cache / "hf-datasets" / REPO / "snapshots" / commit
    downloaded = sorted(p.relative_to(snapshot).parts[0] for p in snapshot.rglob("*.png"))
    assert set(downloaded) == {"train", "validation"} and len(downloaded) == 16
    assert not (snapshot / "README.md").exists() and not (snapshot / "provenance").exists()

    dataset, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    assert summary.split_method == SPLIT_KEPT
    assert summary.rows == {"train": len(published["written"]["train"]),
                            "validation": len(published["written"]["validation"])} == {"train": 12, "validation": 4}
    assert summary.split_overlap == {"problem_id": [], "image_sha256": []} == split_overlap(dataset)
    # A second read of the same commit downloads nothing.
    before = len(hub.requests_for("resolve"))
    again = read_content(f"{SOURCE}@v1.0.0", tmp_path / "work", ontology, cache_dir=cache)
    assert again.version == commit and len(hub.requests_for("resolve")) == before


def test_offline_mode_reads_cached_revisions_and_names_an_uncached_one(published, tmp_path, monkeypatch, ontology):
    import huggingface_hub.constants as hf_constants

    cache = tmp_path / "cache"
    online = read_content(f"{SOURCE}@v1.0.0", tmp_path / "work", ontology, cache_dir=cache)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    offline = read_content(f"{SOURCE}@v1.0.0", tmp_path / "work", ontology, cache_dir=cache)
    assert offline.version == online.version and len(offline.items) == 16
    with pytest.raises(ContentSourceError, match=r"edugraph-exercises@v1\.1\.0: offline mode .* not in the cache"):
        read_content(f"{SOURCE}@v1.1.0", tmp_path / "work", ontology, cache_dir=cache)


def test_a_missing_revision_and_a_repo_without_metadata_fail_naming_them(hub, published, tmp_path, ontology):
    with pytest.raises(ContentSourceError, match=rf"{SOURCE}: has no revision 'v9\.9\.9'"):
        read_content(f"{SOURCE}@v9.9.9", tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    bare = "edugraph-test/no-metadata"
    published["api"].create_repo(bare, repo_type="dataset")
    published["api"].upload_file(path_or_fileobj=b"# nothing\n", path_in_repo="README.md", repo_id=bare,
                                 repo_type="dataset")
    with pytest.raises(ContentSourceError, match=rf"hf://datasets/{bare}@main \(\w+\): no metadata\.jsonl"):
        read_content(f"hf://datasets/{bare}", tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    with pytest.raises(ContentSourceError, match="dataset repository not found"):
        read_content("hf://datasets/edugraph-test/absent", tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    with pytest.raises(ContentSourceError, match="expected hf://datasets/<namespace>/<name>"):
        read_content("hf://models/edugraph-test/x", tmp_path / "work", ontology, cache_dir=tmp_path / "cache")


def test_an_unreachable_hub_fails_naming_the_endpoint_and_caches_nothing(hub, published, tmp_path, ontology):
    hub.fail("repo_info", times=None, status=503)
    with pytest.raises(ContentSourceError, match=rf"{SOURCE}@v1\.0\.0: cannot reach the Hub at {hub.endpoint}"):
        read_content(f"{SOURCE}@v1.0.0", tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "hf-datasets" / REPO / "refs").exists()
    hub.clear_faults()
    hub.fail("resolve", times=None, status="drop")  # metadata resolved, the files cannot be fetched
    with pytest.raises(ContentSourceError, match="cannot reach the Hub"):
        read_content(f"{SOURCE}@v1.0.0", tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "hf-datasets" / REPO / "refs").exists()  # no ref: not taken as complete
    hub.clear_faults()
    assert len(read_content(f"{SOURCE}@v1.0.0", tmp_path / "work", ontology, cache_dir=tmp_path / "cache").items) == 16


def test_a_private_repo_reads_with_hf_token_and_never_leaks_it(hub, tmp_path, monkeypatch, ontology, real_tag_sets):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo("edugraph-test/private-exercises", repo_type="dataset", private=True)
    folder = tmp_path / "release"
    write_imagefolder_release(folder, real_tag_sets[:4])
    api.upload_folder(repo_id="edugraph-test/private-exercises", repo_type="dataset", folder_path=folder)
    source = "hf://datasets/edugraph-test/private-exercises"
    with pytest.raises(ContentSourceError, match="not found .* set HF_TOKEN"):
        read_content(source, tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    release = read_content(source, tmp_path / "work", ontology, cache_dir=tmp_path / "cache")
    assert len(release.items) == 8 and TOKEN not in json.dumps([release.source, release.version])
    assert hub.token_leaks == []


def test_worksheet_dataset_from_a_hub_tag_keeps_the_release_splits(published, data_dir, tmp_path):
    source = ContentSource(source=f"{SOURCE}@v1.0.0", cache_dir=str(tmp_path / "cache"))
    result = materialize(data_dir, source)
    assert result.success
    metadata = result.asset_materializations_for_node("worksheet_dataset")[0].metadata
    commit = published["refs"]["v1.0.0"]
    assert metadata["content_version"].value == commit and metadata["content_revision"].value == "v1.0.0"
    assert metadata["split_method"].value == SPLIT_KEPT
    assert (metadata["rows_train"].value, metadata["rows_validation"].value) == (12, 4)
    lineage = json.loads((data_dir / "worksheet_dataset" / TAG / "lineage.json").read_text())
    assert (lineage["content_version"], lineage["content_revision"]) == (commit, "v1.0.0")
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations())


def test_the_sensor_requests_a_new_or_moved_tag_once_and_retries_an_unreachable_hub(hub, published, data_dir):
    instance = instance_with_partitions(TAG)
    source = ContentSource(source=SOURCE, cache_dir=str(data_dir / ".cache"))

    def tick(cursor=None):
        return sensor_tick(instance, source, cursor)

    refs = published["refs"]
    first = tick()  # the first tick builds only the newest existing release
    assert [r.tags[CONTENT_RELEASE_TAG] for r in first.run_requests] == [f"v1.1.0@{refs['v1.1.0']}"]
    assert tick(first.cursor).run_requests == []

    published["api"].upload_file(path_or_fileobj=b"x\n", path_in_repo="notes.txt", repo_id=REPO, repo_type="dataset")
    published["api"].create_tag(REPO, repo_type="dataset", tag="v1.2.0")
    new_tag = tick(first.cursor)
    head = hub.head(REPO, "dataset")
    assert [r.tags[CONTENT_RELEASE_TAG] for r in new_tag.run_requests] == [f"v1.2.0@{head}"]
    assert tick(new_tag.cursor).run_requests == []

    hub.move_tag(REPO, "v1.0.0", refs["v1.1.0"], repo_type="dataset")  # a re-published release
    moved = tick(new_tag.cursor)
    assert [r.tags[CONTENT_RELEASE_TAG] for r in moved.run_requests] == [f"v1.0.0@{refs['v1.1.0']}"]

    hub.fail("refs", times=None, status=503)
    unreachable = tick(moved.cursor)
    assert isinstance(unreachable, dg.SkipReason) and "unreachable" in unreachable.skip_message
    hub.clear_faults()
    assert tick(moved.cursor).run_requests == []  # retried next tick, nothing new

    # The run the sensor requests builds exactly that commit, recording the tag.
    requested = new_tag.run_requests[0].tags[CONTENT_RELEASE_TAG]
    result = materialize(data_dir, source, tags={CONTENT_RELEASE_TAG: requested})
    metadata = result.asset_materializations_for_node("worksheet_dataset")[0].metadata
    assert (metadata["content_version"].value, metadata["content_revision"].value) == (head, "v1.2.0")


# --- a hostile Hub: what it answers is checked before anything is written ----------------------------------------


def cache_files(cache) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def point_branch_at(hub, branch: str, commit_id: str) -> None:
    """Make the local Hub resolve `branch` to `commit_id` (any string): the content of main's head, under that id."""
    repo = hub.repo(REPO, "dataset")
    repo.commits[commit_id] = dataclasses.replace(repo.commits[repo.branches["main"]], oid=commit_id)
    repo.branches[branch] = commit_id


@pytest.mark.parametrize(
    "commit_id", ["../../../../escaped", "A" * 40, "abc123", "0123456789abcdef0123456789abcdef0123456g"]
)
def test_a_revision_resolving_to_a_bad_commit_is_refused_naming_it(hub, published, tmp_path, ontology, commit_id):
    point_branch_at(hub, "evil", commit_id)
    cache = tmp_path / "cache"
    with pytest.raises(HubSourceError, match=rf"{SOURCE}@evil: the Hub answered '{re.escape(commit_id)}', not a "
                                             r"commit sha \(40 lowercase hex digits\)"):
        download_release(f"{SOURCE}@evil", cache, access=HubAccess(hub.endpoint))
    with pytest.raises(ContentSourceError, match=re.escape(repr(commit_id))):
        read_content(f"{SOURCE}@evil", tmp_path / "work", ontology, cache_dir=cache)
    assert cache_files(cache) == [] and not list(tmp_path.rglob("escaped"))
    assert not hub.requests_for("resolve"), "nothing may be downloaded for a commit that was refused"


def test_a_tag_on_a_bad_commit_and_a_tampered_cached_ref_are_refused(hub, published, tmp_path):
    point_branch_at(hub, "evil", "../escaped")
    hub.repo(REPO, "dataset").tags["v2.0.0"] = "../escaped"
    with pytest.raises(HubSourceError, match=rf"{SOURCE}@v2\.0\.0: the Hub answered '\.\./escaped'"):
        list_release_refs(SOURCE, HubAccess(hub.endpoint))
    # A ref file edited by hand: offline mode refuses the commit it names instead of reading that folder.
    cache = tmp_path / "cache"
    snapshot = download_release(f"{SOURCE}@v1.0.0", cache, access=HubAccess(hub.endpoint))
    assert snapshot.commit == published["refs"]["v1.0.0"]
    (cache / "hf-datasets" / REPO / "refs" / "v1.0.0").write_text("../../elsewhere", encoding="utf-8")
    with pytest.raises(HubSourceError, match=r"@v1\.0\.0: the Hub answered '\.\./\.\./elsewhere'"):
        download_release(f"{SOURCE}@v1.0.0", cache, access=HubAccess(hub.endpoint, offline=True))


def release_sizes(hub, revision: str) -> dict[str, int]:
    """The files a content release consists of (metadata and images; not README.md or provenance/), by size."""
    return {path: len(data) for path, data in sorted(hub.files(REPO, "dataset", revision).items())
            if path.endswith(("/metadata.jsonl", ".png"))}


def test_a_release_over_the_size_cap_fails_naming_the_file_and_the_cap_and_caches_nothing(hub, published, tmp_path):
    sizes = release_sizes(hub, "v1.0.0")
    total = sum(sizes.values())
    assert len(sizes) == 18 and total > 0  # 16 images and two metadata files
    cache = tmp_path / "cache"
    cap = total - 1
    last = list(sizes)[-1]  # files are counted in path order: the last one crosses the cap
    with pytest.raises(HubSourceError) as refused:
        download_release(f"{SOURCE}@v1.0.0", cache, access=HubAccess(hub.endpoint), max_bytes=cap)
    message = str(refused.value)
    assert f"{SOURCE}@v1.0.0" in message and f"{last} ({sizes[last]} bytes)" in message
    assert f"brings the release to {total} bytes, more than the cap of {cap} bytes" in message
    assert cache_files(cache) == [] and not hub.requests_for("resolve")
    # The default cap is a constant: the most an archive release may unpack to.
    assert MAX_SNAPSHOT_BYTES == 4 * 1024**3
    snapshot = download_release(f"{SOURCE}@v1.0.0", cache, access=HubAccess(hub.endpoint), max_bytes=total)
    assert sorted(str(p.relative_to(snapshot.folder)) for p in snapshot.folder.rglob("*")
                  if p.is_file() and ".cache" not in p.parts) == list(sizes)


def test_a_file_larger_than_the_hub_listed_is_refused_and_caches_nothing(hub, published, tmp_path):
    commit = hub.repo(REPO, "dataset").commits[published["refs"]["v1.0.0"]]
    name = next(path for path in sorted(commit.files) if path.endswith("metadata.jsonl"))
    entry = commit.files[name]
    commit.files[name] = dataclasses.replace(entry, size=entry.size - 10)  # the tree understates the file
    cache = tmp_path / "cache"
    with pytest.raises(HubSourceError, match=re.escape(name)):
        download_release(f"{SOURCE}@v1.0.0", cache, access=HubAccess(hub.endpoint))
    repo_cache = cache / "hf-datasets" / REPO
    assert not (repo_cache / "refs").exists() and not (repo_cache / "snapshots").exists()
    assert not (repo_cache / "downloads" / published["refs"]["v1.0.0"]).exists()


def test_a_file_path_leaving_the_release_is_refused(hub, published, tmp_path):
    from edugraph_pipeline_tests.kit.hub_server import Entry

    commit = hub.repo(REPO, "dataset").commits[published["refs"]["v1.0.0"]]
    commit.files["train/../../../../escaped.png"] = Entry(b"png", None, 3)
    cache = tmp_path / "cache"
    with pytest.raises(HubSourceError, match=r"file path 'train/\.\./\.\./\.\./\.\./escaped\.png' leaves the release"):
        download_release(f"{SOURCE}@v1.0.0", cache, access=HubAccess(hub.endpoint))
    assert cache_files(cache) == [] and not list(tmp_path.rglob("escaped.png"))
