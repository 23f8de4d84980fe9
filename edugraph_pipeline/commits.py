"""What counts as a git commit id answered by a remote (the Hub, a git server): 40 lowercase hex digits, checked once.

A commit id pins a download and names cache folders, so anything else a server answers is refused before use.
"""

from __future__ import annotations

import re

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def is_commit_sha(text: str | None) -> bool:
    return bool(text) and COMMIT_SHA.match(text) is not None


def checked_commit(source: str, commit: str | None, error: type[Exception]) -> str:
    """`commit` when it is a full commit id; else `error`, naming `source` (e.g. ``repo@revision``)."""
    if not commit:
        raise error(f"{source}: the Hub answered without a commit sha")
    if not is_commit_sha(commit):
        raise error(f"{source}: the Hub answered {commit[:80]!r}, not a commit sha (40 lowercase hex digits); "
                    "refusing to use it")
    return commit
