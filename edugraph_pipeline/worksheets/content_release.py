"""What reading a worksheet content release yields (its items, skipped entries, version and own splits), the limits
it is read under, and the error a content source raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from edugraph_pipeline.worksheets import archive as archives
from edugraph_pipeline.worksheets.images import MAX_IMAGE_PIXELS
from edugraph_pipeline.worksheets.items import SkipLog, WorksheetItem

MAX_DOWNLOAD_BYTES = 2 * 1024**3


class ContentSourceError(RuntimeError):
    """The content source cannot be read or holds no usable item; the message names the source."""


@dataclass(frozen=True)
class ContentLimits:
    max_download_bytes: int = MAX_DOWNLOAD_BYTES
    max_archive_bytes: int = archives.MAX_TOTAL_BYTES
    max_archive_members: int = archives.MAX_MEMBERS
    max_image_pixels: int = MAX_IMAGE_PIXELS


@dataclass
class ContentRelease:
    source: str  # where it came from, safe to log (no credentials)
    version: str  # identifies the exact content: a sha256, or tag@commit for git releases
    format: str
    items: list[WorksheetItem] = field(default_factory=list)
    skipped: SkipLog = field(default_factory=SkipLog)
    reencoded_images: int = 0
    revision: str | None = None  # the tag (or branch) the release was asked for, when it has one
    splits: dict[str, str] = field(default_factory=dict)  # item source -> the release's own split of it
    label_field: str | None = None  # the ImageFolder rows' label field (`labels` or `tags`); None: no such rows

