"""Local git repositories that stand in for upstream release remotes.

`python -m edugraph_pipeline_tests.kit.remotes SHARED_RELEASES TARGET` builds the ontology remote from
`../shared/ontology-releases` (one commit and tag per release, dated as upstream), for offline use.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import git

from edugraph_pipeline.releases import SEMVER_TAG, semver_key

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_RELEASES = SHARED_DIR / "ontology-releases"


def release_tags(releases_dir: Path = SHARED_RELEASES) -> list[str]:
    return sorted((path.name for path in releases_dir.iterdir() if SEMVER_TAG.match(path.name)), key=semver_key)


def init_repo(path: Path) -> git.Repo:
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "EduGraph test")
        config.set_value("user", "email", "test@edugraph.invalid")
        config.set_value("commit", "gpgsign", "false")
    return repo


def commit_release(repo: git.Repo, tag: str, files: dict[str, bytes], date: str | None = None, annotated: bool = False) -> str:
    """Replace the repository's top-level files with `files`, commit, and tag the commit `tag`."""
    work = Path(repo.working_tree_dir)
    for entry in work.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    repo.git.add("--all")
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}
    with repo.git.custom_environment(**env):
        repo.git.commit("--allow-empty", "-m", f"Release {tag}")
        if annotated:
            repo.git.tag("-a", tag, "-m", f"Release {tag}")
        else:
            repo.git.tag(tag)
    return repo.head.commit.hexsha


def shared_release_files(tag: str, releases_dir: Path = SHARED_RELEASES) -> dict[str, bytes]:
    folder = releases_dir / tag
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != "RELEASED_AT"}


def build_ontology_remote(target: Path, releases_dir: Path = SHARED_RELEASES, tags: list[str] | None = None) -> Path:
    """A repository with one commit per release, in release order, each tagged like upstream."""
    repo = init_repo(target)
    for index, tag in enumerate(tags or release_tags(releases_dir)):
        released_at = (releases_dir / tag / "RELEASED_AT").read_text().strip()
        # Upstream mixes lightweight and annotated tags; exercise both.
        commit_release(repo, tag, shared_release_files(tag, releases_dir), date=released_at, annotated=index % 2 == 1)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} SHARED_RELEASES_DIR TARGET_DIR")
    print(build_ontology_remote(Path(sys.argv[2]), Path(sys.argv[1])))
