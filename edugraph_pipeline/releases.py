"""Releases published as tags of a git remote (the ontology, and content releases kept in git), and the tag forms.

Tags are listed with ``git ls-remote`` and read from a bare mirror kept in the cache folder, straight out of
the tag's tree: nothing is ever checked out, so no file of a release lands anywhere but in memory.

Ontology releases are tagged ``vX.Y.Z``. Content releases are tagged ``vX.Y.Z`` or, as upstream's dataset is since
2026, ``vX.Y.Z-NN``: the NN-th dataset revision built for ontology release ``vX.Y.Z`` (v0.21.0-01 … v0.30.0-03).
Content tags sort by version, then revision; a bare ``vX.Y.Z`` sorts before its revisions (``-NN`` is a later
revision of the dataset, not a semver pre-release).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import git
from filelock import FileLock

from edugraph_pipeline import settings
from edugraph_pipeline.redaction import redact_url  # also imported from here by the release readers' callers

SEMVER_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
CONTENT_TAG = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-(\d+))?$")
MAX_RELEASE_BYTES = 256 * 1024 * 1024
SYMLINK_MODE = 0o120000  # git's file mode of a symbolic link
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GCM_INTERACTIVE": "never"}


class ReleaseSourceError(RuntimeError):
    """The release remote could not be read, or has no such release."""


@dataclass(frozen=True)
class ReleaseTag:
    name: str
    commit: str

    @property
    def semver(self) -> tuple[int, int, int]:
        return semver_key(self.name)


@dataclass(frozen=True)
class ReleaseSnapshot:
    tag: str
    commit: str
    committed_at: str
    files: dict[str, bytes]


def semver_key(tag: str) -> tuple[int, int, int]:
    match = SEMVER_TAG.match(tag)
    if not match:
        raise ValueError(f"{tag!r} is not a release tag of the form vMAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def content_tag_key(tag: str) -> tuple[int, int, int, int]:
    """Order of content release tags: version, then dataset revision (a bare vX.Y.Z is revision 0)."""
    match = CONTENT_TAG.match(tag)
    if not match:
        raise ValueError(f"{tag!r} is not a content release tag of the form vMAJOR.MINOR.PATCH[-NN]")
    major, minor, patch, revision = match.groups()
    return int(major), int(minor), int(patch), int(revision or 0)


def is_content_tag(tag: str) -> bool:
    return CONTENT_TAG.match(tag) is not None


def bound_ontology_version(tag: str) -> str | None:
    """The ontology release a ``vX.Y.Z-NN`` content tag was built for (``vX.Y.Z``); None for any other name
    (a bare ``vX.Y.Z``, a branch, a file name): such content is not bound to one ontology release."""
    match = CONTENT_TAG.match(tag)
    if not match or match.group(4) is None:
        return None
    return "v{}.{}.{}".format(*(int(part) for part in match.groups()[:3]))


def list_release_tags(remote: str, *, content: bool = False) -> list[ReleaseTag]:
    """Release tags of a remote in release order, each with the commit it points to: ontology tags (vX.Y.Z), or
    with `content`, content tags (vX.Y.Z and vX.Y.Z-NN)."""
    pattern, key = (CONTENT_TAG, content_tag_key) if content else (SEMVER_TAG, semver_key)
    try:
        output = git.cmd.Git().execute(["git", "ls-remote", "--tags", remote], env=settings.child_environment(**_GIT_ENV))
    except git.GitCommandError as error:
        raise ReleaseSourceError(f"cannot list tags of {redact_url(remote)}: {_git_reason(error)}") from error
    commits: dict[str, str] = {}
    for line in str(output).splitlines():
        sha, _, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        peeled = name.endswith("^{}")
        name = name.removesuffix("^{}")
        if pattern.match(name) and (peeled or name not in commits):
            commits[name] = sha  # the peeled line of an annotated tag names the commit itself
    return sorted((ReleaseTag(name, sha) for name, sha in commits.items()), key=lambda tag: key(tag.name))


def _git_reason(error: git.GitCommandError) -> str:
    stderr = (error.stderr or "").strip().replace("\n", " ")
    return stderr.removeprefix("stderr: ").strip(" '") or f"git exited with {error.status}"


def _mirror(remote: str, cache_dir: Path) -> git.Repo:
    digest = hashlib.sha256(remote.encode()).hexdigest()[:16]
    path = cache_dir / "git" / f"{digest}.git"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        repo = git.Repo(path) if (path / "HEAD").exists() else git.Repo.init(path, bare=True)
        try:
            with repo.git.custom_environment(**_GIT_ENV):
                repo.git.fetch(remote, "+refs/tags/*:refs/tags/*", "--prune", "--no-write-fetch-head")
        except git.GitCommandError as error:
            raise ReleaseSourceError(f"cannot fetch {redact_url(remote)}: {_git_reason(error)}") from error
    return repo


def read_release(
    remote: str,
    tag: str,
    cache_dir: Path,
    select: Callable[[str], bool],
    *,
    content: bool = False,
) -> ReleaseSnapshot:
    """The files of one release tag that `select` accepts (path -> bytes), read from the tag's tree; `content`: the
    tag is a content release tag (vX.Y.Z[-NN]) rather than an ontology one."""
    pattern, key = (CONTENT_TAG, content_tag_key) if content else (SEMVER_TAG, semver_key)
    key(tag)
    repo = _mirror(remote, cache_dir)
    try:
        commit = repo.commit(f"refs/tags/{tag}")
    except (git.BadName, ValueError) as error:
        known = sorted((ref.name for ref in repo.tags if pattern.match(ref.name)), key=key)
        hint = f"newest known: {', '.join(known[-3:])}" if known else "the remote has no release tags"
        raise ReleaseSourceError(f"release {tag} does not exist in {redact_url(remote)} ({hint})") from error

    files: dict[str, bytes] = {}
    total = 0
    for item in commit.tree.traverse():
        if item.type != "blob" or not select(item.path):
            continue
        if item.mode == SYMLINK_MODE:  # its content is a path; nothing here ever follows it
            raise ReleaseSourceError(f"release {tag}: {item.path} is a symbolic link; release files must be regular files")
        total += item.size
        if total > MAX_RELEASE_BYTES:
            raise ReleaseSourceError(f"release {tag}: selected files exceed {MAX_RELEASE_BYTES} bytes")
        files[item.path] = item.data_stream.read()
    committed_at = datetime.fromtimestamp(commit.committed_date, tz=timezone.utc).isoformat()
    return ReleaseSnapshot(tag=tag, commit=commit.hexsha, committed_at=committed_at, files=files)
