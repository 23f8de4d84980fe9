"""What a content source names, the releases it publishes (in release order, each with the commit its tag points at),
and the ontology release each of them is built for.

`EDUGRAPH_CONTENT_SOURCE` is one of (`source_kind` decides which, once, in this order):
- `sample`: the offline generator;
- a Hugging Face Hub dataset repository, `hf://datasets/<namespace>/<name>[@<revision>]`;
- a git remote whose content tags are releases (`git+<url>`, or any remote ending in `.git`);
- an `http(s)://` URL of a `.tar.gz` release archive;
- a local folder holding a release (either upstream format), or a folder of `*.tar.gz` releases;
- a local `.tar.gz` release archive.

A Hub dataset's or a git remote's releases are its content tags, `vX.Y.Z` and `vX.Y.Z-NN` (`releases.CONTENT_TAG`):
a `vX.Y.Z-NN` release was built for ontology release `vX.Y.Z` and is validated against that release only; a bare
`vX.Y.Z`, an archive name or an untagged source is bound to no ontology release (it is read against whichever
partition runs, as it always was).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path

from edugraph_pipeline.releases import bound_ontology_version, content_tag_key, list_release_tags
from edugraph_pipeline.worksheets import hub_source
from edugraph_pipeline.worksheets.content_release import ContentSourceError

SAMPLE = "sample"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_NAMED_VERSION = re.compile(r"v\d+\.\d+\.\d+(?:-\d+)?")


class SourceKind(enum.Enum):
    """What a content source names; `source_kind` decides it, everything else asks it."""

    SAMPLE = "sample"  # the offline generator
    HUB = "hub"  # a Hub dataset repository: one revision, or its content tags
    GIT = "git"  # a git remote whose content tags are releases
    URL = "url"  # an http(s) URL of one release archive
    ARCHIVE = "archive"  # a local release archive
    FOLDER = "folder"  # a local folder: one release, or a folder of release archives


def is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def is_git_source(source: str) -> bool:
    return source.startswith("git+") or source.rstrip("/").endswith(".git")


def git_remote(source: str) -> str:
    return source.removeprefix("git+")


def source_kind(source: str) -> SourceKind:
    """The kind of content source `source` names (surrounding whitespace ignored); fails for anything else."""
    source = source.strip()
    if source == SAMPLE:
        return SourceKind.SAMPLE
    if hub_source.is_hub_source(source):
        return SourceKind.HUB
    if is_git_source(source):
        return SourceKind.GIT
    if source.lower().startswith(("http://", "https://")):
        return SourceKind.URL
    path = Path(source).expanduser()
    if path.is_dir():
        return SourceKind.FOLDER
    if path.is_file() and is_archive(path.name):
        return SourceKind.ARCHIVE
    raise ContentSourceError(
        f"content source {source!r} is neither 'sample', an existing folder or .tar.gz file, an http(s) URL, "
        "a git remote (git+<url> or ending in .git), nor hf://datasets/<namespace>/<name>[@<revision>]"
    )


@dataclass(frozen=True)
class ContentReleaseRef:
    """One release of a series: its tag (or archive name) and the commit the tag points at (None for archives)."""

    name: str
    commit: str | None = None
    hub: bool = False

    @property
    def request(self) -> str:
        """How a run names this release (the run tag the sensor sets): a Hub release as `tag@commit`, so a moved
        tag is read at the commit the sensor saw; a git tag or an archive by its name."""
        return hub_source.release_id(self.name, self.commit) if self.hub and self.commit else self.name

    @property
    def ontology_version(self) -> str | None:
        """The ontology release this release is built for (`vX.Y.Z` of a `vX.Y.Z-NN` tag), or None."""
        return None if self.commit is None else bound_ontology_version(self.name)


def list_folder_releases(folder: Path) -> list[str]:
    """Release archives in a folder of releases, newest last (names with a version first in version order, then
    by name)."""

    def order(name: str):
        stem = re.sub(r"(\.tar\.gz|\.tgz|\.tar)$", "", name)
        match = _NAMED_VERSION.search(stem)
        return (1, content_tag_key(match.group()), name) if match else (0, (0, 0, 0, 0), name)

    return sorted((p.name for p in folder.iterdir() if p.is_file() and is_archive(p.name)), key=order)


def list_git_releases(source: str) -> list[str]:
    return [tag.name for tag in list_release_tags(git_remote(source), content=True)]


def list_release_refs(source: str) -> list[ContentReleaseRef]:
    """The releases `source` publishes, newest last: a git remote's or a Hub dataset's content tags with their
    commits, or the archive names of a folder of releases; [] for a source of one release."""
    kind = source_kind(source)
    source = source.strip()
    if kind is SourceKind.GIT:
        return [ContentReleaseRef(tag.name, tag.commit) for tag in list_release_tags(git_remote(source), content=True)]
    if kind is SourceKind.HUB:
        try:
            if hub_source.parse_source(source).revision is not None:
                return []
            return [ContentReleaseRef(tag, commit, hub=True) for tag, commit in hub_source.list_release_refs(source)]
        except hub_source.HubSourceError as error:
            raise ContentSourceError(str(error)) from error
    if kind is SourceKind.FOLDER:
        return [ContentReleaseRef(name) for name in list_folder_releases(Path(source).expanduser())]
    return []


def list_releases(source: str) -> list[str]:
    """The releases `source` publishes as runs name them (`ContentReleaseRef.request`), newest last."""
    return [ref.request for ref in list_release_refs(source)]


def pinned_revision(source: str) -> str | None:
    """The revision a source is pinned to (`hf://datasets/<repo>@<revision>`), or None."""
    source = source.strip()
    return hub_source.parse_source(source).revision if hub_source.is_hub_source(source) else None


def release_name(release: str) -> str:
    """The tag or archive name of a release as a run names it (`tag@commit` of a Hub release: the tag)."""
    return hub_source.split_release_id(release)[0]
