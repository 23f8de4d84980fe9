"""Image validation and normalisation: every image in the dataset is a fully decodable RGB PNG or JPEG.

Policy for big images: a file over `max_pixels` is *rejected* before any pixel is decoded (it is either a
decompression bomb or far beyond what a worksheet needs); a plausible image whose longer side exceeds
`max_side` is *downscaled* to that side.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
MAX_SIDE = 2048
# Formats whose bytes the dataset can keep as they are when the image is already plain RGB.
_KEEP_AS_IS_FORMATS = {"PNG", "JPEG"}
_ORIENTATION_TAG = 0x0112


class ImageRejected(ValueError):
    """An image that cannot go into the dataset; `reason` is a short countable phrase."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class NormalisedImage:
    data: bytes
    size: tuple[int, int]
    original_mode: str
    reencoded: bool


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels for any mode: transparency composited on white, 16/32-bit and float scaled to 8 bits."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode.startswith("I") or image.mode == "F":
        # Pillow's own I;16 -> L conversion clips at 255 instead of scaling, which turns most scans white.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if high <= low else (array - low) * (255.0 / (high - low))
        return Image.fromarray(scaled.round().astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


def check_file_size(size: int, name: str) -> None:
    """Refuse an image file larger than MAX_IMAGE_BYTES (callers check the size before reading the file)."""
    if size > MAX_IMAGE_BYTES:
        raise ImageRejected("image file too large", f"{name}: {size} bytes, at most {MAX_IMAGE_BYTES}")


def normalise_image(
    data: bytes,
    name: str,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int = MAX_SIDE,
) -> NormalisedImage:
    """Decode `data` completely and return RGB image bytes, or raise `ImageRejected` naming `name`.

    Already-plain RGB PNG/JPEG files within the size limits keep their original bytes: re-encoding them would
    cost most of the ingestion time and change nothing the model sees.
    """
    check_file_size(len(data), name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected("not a readable image", f"{name}: {error}") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected("corrupt image", f"{name}: {error}") from None
    width, height = image.size
    # Checked from the header, before a single pixel is decoded.
    if width * height > max_pixels:
        raise ImageRejected(
            "image too large", f"{name}: {width}x{height} = {width * height} pixels, at most {max_pixels}"
        )
    if width == 0 or height == 0:
        raise ImageRejected("corrupt image", f"{name}: empty image {width}x{height}")
    original_format, original_mode = image.format, image.mode
    # Truncated files must fail here rather than load as half-grey pictures (Pillow's default, which
    # `ImageFile.LOAD_TRUNCATED_IMAGES = True` elsewhere in the process would undo).
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageRejected("corrupt image", f"{name}: cannot decode ({error})") from None

    rotated = image.getexif().get(_ORIENTATION_TAG, 1) not in (0, 1)
    plain = (
        original_format in _KEEP_AS_IS_FORMATS
        and original_mode == "RGB"
        and "transparency" not in image.info
        and not rotated
        and max(width, height) <= max_side
    )
    if plain:
        return NormalisedImage(data, (width, height), original_mode, reencoded=False)

    if rotated:
        image = ImageOps.exif_transpose(image)
    rgb = _to_rgb(image)
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    return NormalisedImage(buffer.getvalue(), rgb.size, original_mode, reencoded=True)
