"""Safe extraction of a content release archive (`.tar.gz`) into a work folder.

Two lines of defence: our own checks (no links of any kind, no special files, every path inside the folder,
caps on member count and total size, checked from the headers before anything is written) and then tarfile's
`data` filter on every member we extract. A hostile member is skipped and counted; an archive that exceeds the
caps is refused as a whole, since it is a decompression bomb or not a content release.
"""

from __future__ import annotations

import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_TOTAL_BYTES = 4 * 1024**3
MAX_MEMBERS = 200_000


class ArchiveRejected(ValueError):
    """The archive as a whole cannot be used; the message names the archive and why."""


@dataclass
class ExtractionReport:
    files: int = 0
    total_bytes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _refusal(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be extracted, before tarfile's own filter has a say."""
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r} (links are not allowed in content releases)"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "device or special file"
    if not (member.isreg() or member.isdir()):
        return f"unsupported member type {member.type!r}"
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith("\\") or (path.parts and ":" in path.parts[0]):
        return "absolute path"
    if ".." in path.parts or "\\" in member.name:
        return "path leaves the extraction folder"
    return None


def safe_extract(
    archive_path: Path,
    destination: Path,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
) -> ExtractionReport:
    """Extract the regular files and folders of `archive_path` under `destination` (which must be empty)."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    report = ExtractionReport()
    members = 0
    try:
        with tarfile.open(archive_path, mode="r:*") as archive:
            for member in archive:
                members += 1
                if members > max_members:
                    raise ArchiveRejected(
                        f"{archive_path.name}: more than {max_members} members; refusing a possible archive bomb"
                    )
                reason = _refusal(member)
                if reason is None and not (root / member.name).resolve().is_relative_to(root):
                    reason = "path leaves the extraction folder"
                if reason is None:
                    try:
                        member = tarfile.data_filter(member, str(root))
                    except tarfile.FilterError as error:
                        reason = f"refused by tarfile data filter ({error})"
                if reason is not None:
                    report.skipped.append((member.name, reason))
                    continue
                if member.isreg():
                    report.total_bytes += member.size
                    if report.total_bytes > max_total_bytes:
                        raise ArchiveRejected(
                            f"{archive_path.name}: members unpack to more than {max_total_bytes} bytes; "
                            "refusing a possible decompression bomb"
                        )
                    report.files += 1
                archive.extract(member, root, set_attrs=False, filter="data")
    except ArchiveRejected:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise ArchiveRejected(f"{archive_path.name}: not a readable .tar.gz archive ({error})") from error
    return report
