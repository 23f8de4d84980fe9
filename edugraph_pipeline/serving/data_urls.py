"""Images of chat requests: a ``data:`` URL -> a decoded `PIL.Image`, or `UploadRejected` naming the field.

OpenAI-style clients send an image as ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``.
Only ``data:`` URLs are accepted: any other URL (``http:``, ``https:``, ``file:``, ...) is refused before anything
is done with it, so the service never connects anywhere on a client's behalf. The bytes then get every check an
uploaded file gets (`uploads.decode_upload`: size, pixel cap from the header, decompression bombs, truncation, not
an image), and the decoded picture must be a PNG, JPEG or WebP (the formats the media type may name).
"""

from __future__ import annotations

import base64
import binascii

from PIL import Image

from edugraph_pipeline.serving.uploads import UploadLimits, UploadRejected, decode_upload

# media type -> the Pillow format its content must have
IMAGE_MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/webp": "WEBP"}
_BASE64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def url_scheme(url: str) -> str:
    head, colon, _ = url.partition(":")
    return head.strip().lower() if colon and head.strip().replace("+", "").replace("-", "").isalnum() else ""


def data_url_bytes(url: object, field: str, limits: UploadLimits) -> tuple[bytes, str]:
    """``(bytes, media type)`` of a base64 ``data:`` URL, checked for size before it is decoded."""
    if not isinstance(url, str) or not url:
        raise UploadRejected(400, "bad_image_url", f"{field}: expected a data: URL string", field)
    scheme = url_scheme(url)
    if scheme != "data":
        what = f"a {scheme}: URL" if scheme else "no URL"
        raise UploadRejected(
            400, "url_not_allowed",
            f"{field}: {what}; only data: URLs (base64 PNG, JPEG or WebP) are accepted: the service never fetches "
            "URLs", field,
        )
    header, comma, payload = url[len("data:"):].partition(",")
    if not comma:
        raise UploadRejected(400, "bad_data_url", f"{field}: a data: URL needs a ',' before its data", field)
    parameters = [part.strip().lower() for part in header.split(";")]
    media_type = parameters[0]
    if "base64" not in parameters[1:]:
        raise UploadRejected(400, "bad_data_url", f"{field}: the data: URL must be base64 (data:<type>;base64,...)",
                             field)
    if media_type not in IMAGE_MEDIA_TYPES:
        raise UploadRejected(
            415, "unsupported_media_type",
            f"{field}: media type {media_type or '(none)'}; expected one of image/png, image/jpeg, image/webp", field,
        )
    encoded = payload.strip().encode("ascii", errors="replace")
    # Decoded size from the encoded length, before decoding: 4 characters carry 3 bytes.
    if len(encoded) // 4 * 3 > limits.max_file_bytes + 2:
        raise UploadRejected(
            413, "file_too_large", f"{field}: about {len(encoded) // 4 * 3} bytes, at most {limits.max_file_bytes}",
            field,
        )
    if not encoded:
        raise UploadRejected(422, "empty_file", f"{field}: empty image data", field)
    if not set(encoded) <= _BASE64_ALPHABET:
        raise UploadRejected(400, "bad_data_url", f"{field}: the data is not base64", field)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise UploadRejected(400, "bad_data_url", f"{field}: the data is not valid base64 (length, padding)",
                             field) from None
    return data, media_type


def decode_data_url(url: object, field: str, limits: UploadLimits) -> Image.Image:
    """The decoded image of a ``data:`` URL, or `UploadRejected` (4xx) naming `field`; see the module docstring."""
    data, media_type = data_url_bytes(url, field, limits)
    image = decode_upload(data, field, limits)
    if image.format not in set(IMAGE_MEDIA_TYPES.values()):
        raise UploadRejected(
            415, "unsupported_media_type",
            f"{field}: the data is a {image.format or 'unknown'} image; expected PNG, JPEG or WebP", field,
        )
    return image
