import pytest

from edugraph_pipeline.releases import (
    ReleaseSourceError,
    bound_ontology_version,
    content_tag_key,
    list_release_tags,
    read_release,
    redact_url,
    semver_key,
)
from edugraph_pipeline_tests.kit.remotes import commit_release, init_repo


@pytest.fixture
def small_remote(tmp_path):
    repo = init_repo(tmp_path / "remote")
    commit_release(repo, "v0.2.0", {"a.ttl": b"two"}, annotated=True)
    commit_release(repo, "v0.10.0", {"a.ttl": b"ten", "docs/b.ttl": b"nested"})
    commit_release(repo, "v0.9.1", {"a.ttl": b"nine"}, annotated=True)
    repo.git.tag("not-a-release")
    return repo


def test_tags_are_listed_in_semver_order_with_their_commits(small_remote):
    tags = list_release_tags(small_remote.working_tree_dir)
    assert [tag.name for tag in tags] == ["v0.2.0", "v0.9.1", "v0.10.0"]
    # Annotated tags resolve to the commit, not the tag object.
    assert tags[1].commit == small_remote.commit("v0.9.1").hexsha


def test_a_release_is_read_from_the_tag_tree_without_checkout(small_remote, tmp_path):
    snapshot = read_release(small_remote.working_tree_dir, "v0.10.0", tmp_path / "cache", select=lambda p: p.endswith(".ttl"))
    assert snapshot.files == {"a.ttl": b"ten", "docs/b.ttl": b"nested"}
    assert snapshot.commit == small_remote.commit("v0.10.0").hexsha
    mirror = next((tmp_path / "cache" / "git").glob("*.git"))
    assert not (mirror / "a.ttl").exists()


def test_a_moved_tag_is_seen_on_the_next_read(small_remote, tmp_path):
    remote = small_remote.working_tree_dir
    read_release(remote, "v0.2.0", tmp_path, select=lambda p: True)
    commit_release(small_remote, "v0.2.0-fix", {"a.ttl": b"fixed"})
    small_remote.git.tag("-f", "v0.2.0", "HEAD")
    assert read_release(remote, "v0.2.0", tmp_path, select=lambda p: True).files == {"a.ttl": b"fixed"}


def test_missing_tag_names_the_newest_known_ones(small_remote, tmp_path):
    with pytest.raises(ReleaseSourceError, match=r"release v9\.9\.9 does not exist in .*newest known: v0\.2\.0, v0\.9\.1, v0\.10\.0"):
        read_release(small_remote.working_tree_dir, "v9.9.9", tmp_path, select=lambda p: True)


def test_unreachable_remote_is_a_clear_error(tmp_path):
    with pytest.raises(ReleaseSourceError, match="cannot list tags of .*nowhere"):
        list_release_tags(str(tmp_path / "nowhere"))
    with pytest.raises(ReleaseSourceError, match="cannot fetch"):
        read_release(str(tmp_path / "nowhere"), "v1.0.0", tmp_path / "cache", select=lambda p: True)


def test_credentials_never_leave_the_url_redactor():
    assert redact_url("https://user:s3cret@github.com/org/repo.git") == "https://***@github.com/org/repo.git"
    assert redact_url("https://ghp_token@example.com:8443/r.git") == "https://***@example.com:8443/r.git"
    assert redact_url("/local/path") == "/local/path"


def test_semver_key_rejects_non_release_tags():
    assert semver_key("v0.21.0") > semver_key("v0.9.6")
    with pytest.raises(ValueError, match="not a release tag"):
        semver_key("latest")


def test_content_tags_order_by_version_then_dataset_revision():
    tags = ["v0.30.0-03", "v0.21.0-01", "v0.9.6", "v0.21.0", "v0.30.0-02", "v0.22.2-01", "v0.21.0-10", "v0.21.0-02"]
    assert sorted(tags, key=content_tag_key) == [
        "v0.9.6", "v0.21.0", "v0.21.0-01", "v0.21.0-02", "v0.21.0-10", "v0.22.2-01", "v0.30.0-02", "v0.30.0-03"]
    for bad in ("v0.21.0-", "v0.21.0-rc1", "0.21.0-01", "v0.21-01", "latest"):
        with pytest.raises(ValueError, match="not a content release tag"):
            content_tag_key(bad)
    with pytest.raises(ValueError, match="not a release tag"):
        semver_key("v0.21.0-01")  # ontology releases have no dataset revision


def test_a_dataset_revision_is_bound_to_its_ontology_release():
    assert bound_ontology_version("v0.21.0-01") == "v0.21.0"
    assert bound_ontology_version("v0.30.0-03") == "v0.30.0"
    assert bound_ontology_version("v00.021.0-1") == "v0.21.0"
    for unbound in ("v0.21.0", "main", "c-v0.21.0-01.tar.gz", ""):
        assert bound_ontology_version(unbound) is None


def test_content_tags_of_a_remote_and_reading_one(small_remote, tmp_path):
    commit_release(small_remote, "v0.10.0-01", {"a.ttl": b"ten, first dataset"})
    commit_release(small_remote, "v0.10.0-02", {"a.ttl": b"ten, second dataset"})
    remote = small_remote.working_tree_dir
    assert [tag.name for tag in list_release_tags(remote)] == ["v0.2.0", "v0.9.1", "v0.10.0"]
    content = list_release_tags(remote, content=True)
    assert [tag.name for tag in content] == ["v0.2.0", "v0.9.1", "v0.10.0", "v0.10.0-01", "v0.10.0-02"]
    assert content[-1].commit == small_remote.commit("v0.10.0-02").hexsha
    snapshot = read_release(remote, "v0.10.0-01", tmp_path, select=lambda p: True, content=True)
    assert snapshot.files == {"a.ttl": b"ten, first dataset"}
    with pytest.raises(ValueError, match="not a release tag"):
        read_release(remote, "v0.10.0-01", tmp_path, select=lambda p: True)
    with pytest.raises(ReleaseSourceError, match=r"release v0\.10\.0-03 does not exist .*v0\.10\.0, v0\.10\.0-01, v0\.10\.0-02"):
        read_release(remote, "v0.10.0-03", tmp_path, select=lambda p: True, content=True)
