"""Upload checks: bytes from a multipart part -> a decoded `PIL.Image`, or `UploadRejected` naming the file.

Checks run cheapest first, and nothing is decoded before the header has shown the image is within the pixel
cap (a decompression bomb is a few KiB of PNG that decodes to gigabytes). Truncated files fail instead of
loading as half-grey pictures. The RGB conversion is left to the classify path (`load_image`), so a served
image reaches the model exactly as `edugraph classify` would load the same file.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

MAX_FILE_NAME = 200  # echoed file names are cut to this many characters


@dataclass(frozen=True)
class UploadLimits:
    max_files: int = 16  # images per request
    max_request_bytes: int = 32 * 1024 * 1024  # the whole request body
    max_file_bytes: int = 16 * 1024 * 1024  # one image file
    max_pixels: int = 4096 * 4096  # width x height from the header, before decoding
    request_timeout_s: float = 60.0  # reading the upload + waiting for the answer

    def __post_init__(self) -> None:
        for name in ("max_files", "max_request_bytes", "max_file_bytes", "max_pixels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s must be positive, got {self.request_timeout_s}")


class UploadRejected(ValueError):
    """A request the service refuses: `status` (4xx), a stable `code`, and the `file` it concerns (if any)."""

    def __init__(self, status: int, code: str, message: str, file: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.file = status, code, message, file

    def to_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.file is not None:
            error["file"] = self.file
        return {"error": error}


def display_name(filename: str | None, index: int) -> str:
    """The client's file name as echoed back (cut short), or ``<file N>`` when it sent none."""
    name = (filename or "").strip()
    return name[:MAX_FILE_NAME] if name else f"<file {index}>"


def decode_upload(data: bytes, name: str, limits: UploadLimits) -> Image.Image:
    """The fully decoded image, or `UploadRejected` (413 too large, 422 not a usable image) naming `name`."""
    if not data:
        raise UploadRejected(422, "empty_file", f"{name}: empty file", name)
    if len(data) > limits.max_file_bytes:
        raise UploadRejected(
            413, "file_too_large", f"{name}: {len(data)} bytes, at most {limits.max_file_bytes}", name
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > limits.max_pixels:
                raise UploadRejected(
                    413, "image_too_large",
                    f"{name}: {width}x{height} = {width * height} pixels, at most {limits.max_pixels}", name,
                )
            if width < 1 or height < 1:
                raise UploadRejected(422, "corrupt_image", f"{name}: empty image {width}x{height}", name)
            image.load()
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UploadRejected(413, "image_too_large", f"{name}: decompression bomb ({error})", name) from None
    except UnidentifiedImageError:
        raise UploadRejected(422, "not_an_image", f"{name}: not a readable image", name) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadRejected(422, "corrupt_image", f"{name}: damaged or truncated image ({error})", name) from None
    return image
