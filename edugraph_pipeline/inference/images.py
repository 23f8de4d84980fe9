"""Classifier inputs: a path or a `PIL.Image` -> an RGB image, or `ImageInputError` naming the file.

Every backend, `edugraph classify`, the service (after its upload checks) and the evaluation reach the model
through `load_image`, so the same file gives the same pixels whichever way it arrives.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


class ImageInputError(ValueError):
    """An input that is not a usable image; the message starts with the file's name."""


def source_name(source: Any, index: int) -> str:
    """How results and errors name an input: its path, or ``<image N>`` for an in-memory picture."""
    return str(source) if isinstance(source, (str, os.PathLike)) else f"<image {index}>"


def load_image(source: Any, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS):
    """An RGB `PIL.Image` from a path or an image; `ImageInputError` naming the file for anything unusable."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise ImageInputError(f"<image>: {source.width}x{source.height} exceeds the {max_pixels} pixel cap")
        if source.width < 1 or source.height < 1:
            raise ImageInputError("<image>: empty image")
        return source if source.mode == "RGB" else source.convert("RGB")
    if not isinstance(source, (str, os.PathLike)):
        raise ImageInputError(f"{source!r}: not an image path or PIL image")
    path = Path(source)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if not path.is_file():
        raise ImageInputError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise ImageInputError(f"{path}: empty file")
    if size > max_bytes:
        raise ImageInputError(f"{path}: {size} bytes exceeds the {max_bytes} byte limit")
    try:
        with Image.open(path) as probe:  # the header's size, before any pixel is decoded
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageInputError(f"{path}: {width}x{height} exceeds the {max_pixels} pixel cap")
            probe.verify()
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except ImageInputError:
        raise
    except PermissionError as error:
        raise ImageInputError(f"{path}: cannot be read ({error.strerror or error})") from error
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ImageInputError(f"{path}: not a readable image ({error.__class__.__name__})") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageInputError(f"{path}: damaged or unreadable image ({error})") from error
