"""Images that are not math worksheets, which the model must answer with `{"Error": "UnsupportedMaterial"}`.

Two sources, both offline: photographs bundled with scikit-image (cropped, resized and recoloured so each one
appears in many variants), and generated pictures with no math in them (landscapes, pages of prose, textures).
Photos showing clocks, coins or printed pages are left out: they come too close to worksheet content.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import lru_cache
from random import Random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from edugraph_pipeline.worksheets import drawing
from edugraph_pipeline.worksheets.items import UNSUPPORTED_TAG, VIEW_UNSUPPORTED, WorksheetItem
from edugraph_pipeline.worksheets.sample_generator import encode_png

# Bundled with scikit-image itself (no download); checked to load offline with scikit-image 0.26.
SKIMAGE_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "immunohistochemistry",
    "moon", "colorwheel", "brick", "grass", "gravel", "cell", "retina", "logo",
)
_PROSE = (
    "The fox ran across the quiet meadow while the sun was setting behind the hills.",
    "Every morning the baker opened the shop and the smell of fresh bread filled the street.",
    "Rain tapped on the window as the children read stories about dragons and castles.",
    "The old lighthouse keeper watched the ships sail past on the grey and windy sea.",
    "In the garden the bees moved from flower to flower, humming a soft and sleepy song.",
    "Mia packed her bag, tied her shoes and hurried out to catch the yellow school bus.",
    "The river curled through the forest, past mossy stones and tall whispering pines.",
)


@lru_cache(maxsize=len(SKIMAGE_PHOTOS))
def skimage_photo(name: str) -> Image.Image | None:
    """A bundled scikit-image sample as RGB, or None when this installation cannot load it offline."""
    try:
        from skimage import data

        array = getattr(data, name)()
    except Exception:  # noqa: BLE001 - a sample that needs a download (pooch) is simply not used
        return None
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    image = Image.fromarray(array)
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def available_photos() -> tuple[str, ...]:
    return tuple(name for name in SKIMAGE_PHOTOS if skimage_photo(name) is not None)


def photo_variant(rng: Random, photo: Image.Image, size: tuple[int, int]) -> Image.Image:
    width, height = photo.size
    crop = rng.uniform(0.6, 1.0)
    crop_w, crop_h = max(16, int(width * crop)), max(16, int(height * crop))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    image = photo.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.6, 1.4))
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
    target = size if rng.random() < 0.5 else (size[1], size[0])
    return ImageOps.fit(image, target)


def landscape(rng: Random, size: tuple[int, int]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    sky_top, sky_bottom = rng.choice((((90, 150, 230), (200, 225, 255)), ((250, 140, 80), (255, 220, 170))))
    horizon = int(height * rng.uniform(0.45, 0.65))
    for y in range(horizon):
        t = y / horizon
        draw.line((0, y, width, y), fill=tuple(round(a + (b - a) * t) for a, b in zip(sky_top, sky_bottom)))
    sun = (rng.randint(40, width - 40), rng.randint(30, horizon // 2))
    draw.ellipse((sun[0] - 30, sun[1] - 30, sun[0] + 30, sun[1] + 30), fill=(255, 230, 120))
    for layer in range(3):
        base = horizon + layer * (height - horizon) // 4
        green = (40 + 30 * layer, 120 + 25 * layer, 50)
        phase, amplitude = rng.uniform(0, 6.3), rng.uniform(10, 40)
        points = [(x, base - amplitude * math.sin(x / rng.uniform(60, 140) + phase)) for x in range(0, width + 10, 10)]
        draw.polygon([(0, height), *points, (width, height)], fill=green)
    for _ in range(rng.randint(2, 7)):
        x, y = rng.randint(0, width), rng.randint(horizon, height - 20)
        draw.rectangle((x - 4, y - 30, x + 4, y), fill=(100, 70, 40))
        draw.ellipse((x - 22, y - 70, x + 22, y - 24), fill=(30, 100 + rng.randint(0, 60), 40))
    return image


def prose_page(rng: Random, size: tuple[int, int]) -> Image.Image:
    """A page of story text: written material without any math, which must not be mistaken for a worksheet."""
    style = drawing.Style.random(rng, size)
    image = Image.new("RGB", size, style.paper)
    draw = ImageDraw.Draw(image)
    text_font = style.font(0.8)
    width, height = size
    y = style.margin
    draw.text((width // 2, y), rng.choice(("A Walk Outside", "The Little Boat", "Our Garden")),
              font=style.font(1.2), fill=style.ink, anchor="ma")
    y += style.text_size * 2
    sentences = [rng.choice(_PROSE) for _ in range(12)]
    line = ""
    for word in " ".join(sentences).split():
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=text_font) > width - 2 * style.margin:
            draw.text((style.margin, y), line, font=text_font, fill=style.ink)
            y += round(style.text_size * 1.2)
            line = word
            if y > height - style.margin - style.text_size:
                break
        else:
            line = candidate
    return image


def texture(rng: Random, size: tuple[int, int]) -> Image.Image:
    """Smooth coloured noise, like a photo of fabric or a wall."""
    width, height = size
    small = np.random.default_rng(rng.getrandbits(32)).integers(0, 256, (height // 16 + 1, width // 16 + 1, 3))
    return Image.fromarray(small.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)


def unsupported_images(count: int, seed: int = 0, size: tuple[int, int] = drawing.PAGE_SIZE
                       ) -> Iterator[tuple[str, str, Image.Image]]:
    """`count` (identifier, kind, image) triples of non-math pictures, reproducible from `seed`."""
    photos = available_photos()
    makers = {"landscape": landscape, "prose": prose_page, "texture": texture}
    for index in range(count):
        rng = Random(f"edugraph-unsupported:{seed}:{index}")
        choice = rng.choice((*(["photo"] * 2 if photos else []), *makers))
        if choice == "photo":
            name = rng.choice(photos)
            image = photo_variant(rng, skimage_photo(name), size)
            kind = f"photo-{name}"
        else:
            image = makers[choice](rng, size)
            kind = choice
        yield f"unsupported-{seed}-{index:06d}", kind, image


def unsupported_items(count: int, seed: int = 0, size: tuple[int, int] = drawing.PAGE_SIZE,
                      source: str = "sample") -> Iterator[WorksheetItem]:
    for identifier, kind, image in unsupported_images(count, seed, size):
        yield WorksheetItem(encode_png(image), (UNSUPPORTED_TAG,), identifier, VIEW_UNSUPPORTED,
                            f"unsupported-{kind}", source)
