"""Keeping secrets out of logs, errors and metadata: the one place text is redacted before anyone sees it.

`redact` masks the values it is given (tokens, passwords read from settings by the caller), any ``Bearer ...``
value, any Hugging Face-shaped token (``hf_...``) and credentials inside URLs; `redact_url` shows a URL without its
user information. Callers pass secret values in: this module reads no environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words and digits
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",]+")
_HF_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{16,}\b")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@'\"]+@")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every given secret value, bearer value, hf_-shaped token and URL credential replaced by ``***``."""
    for value in sorted((value for value in secrets if value and len(value) >= _MIN_SECRET_LENGTH), key=len,
                        reverse=True):
        text = text.replace(value, MASK)
    text = _BEARER.sub(rf"\1{MASK}", text)
    text = _HF_TOKEN_SHAPE.sub(MASK, text)
    return _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)


def redact_url(url: str) -> str:
    """The URL without any credentials, safe for logs and metadata (a local path is returned as it is)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))
    return url
