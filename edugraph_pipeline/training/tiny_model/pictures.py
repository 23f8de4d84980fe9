"""Generated pictures with plain-language descriptions (digits, counted coloured shapes, small sums, rows of tasks,
noise textures) that the tiny base is pretrained on."""

from __future__ import annotations

import random

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
    "black": (20, 20, 20),
    "orange": (240, 140, 20),
}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
TEXTURES = ("grass", "sand", "clouds", "stones")


def default_font(size: int):
    """Pillow's default font at `size` (the fixed-size bitmap font where Pillow has no FreeType)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _shape(draw, kind: str, box: tuple[int, int, int, int], colour) -> None:
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    else:  # triangle
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)


def generate_picture(rng: random.Random, size: int = 224):
    """One generated picture and its plain-language description."""
    from PIL import Image, ImageDraw

    kind = rng.choice(["digit", "shapes", "sum", "texture", "worksheet"])
    if kind == "texture":
        texture = rng.choice(TEXTURES)
        base = {"grass": (60, 140, 50), "sand": (210, 190, 140), "clouds": (170, 190, 230), "stones": (120, 120, 120)}
        import numpy as np

        nprng = np.random.default_rng(rng.randrange(2**31))
        scale = {"grass": 60, "sand": 25, "clouds": 40, "stones": 80}[texture]
        block = {"grass": 2, "sand": 1, "clouds": 16, "stones": 12}[texture]
        small = nprng.normal(0, scale, (size // block + 1, size // block + 1, 1))
        noise = np.kron(small, np.ones((block, block, 1)))[:size, :size]
        arr = np.clip(np.array(base[texture])[None, None, :] + noise, 0, 255).astype("uint8")
        return Image.fromarray(arr, "RGB"), f"a photo of {texture}, not a math worksheet"
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    if kind == "digit":
        digit = rng.randrange(10)
        colour_name = rng.choice(list(COLOURS))
        draw.text(
            (size // 2 + rng.randint(-30, 30), size // 2 + rng.randint(-30, 30)),
            str(digit),
            fill=COLOURS[colour_name],
            font=default_font(rng.randint(90, 140)),
            anchor="mm",
        )
        return image, f"the number {digit}"
    if kind == "shapes":
        count = rng.randint(1, 6)
        shape = rng.choice(["circle", "square", "triangle"])
        colour_name = rng.choice(list(COLOURS))
        cells = rng.sample(range(9), count)
        cell = size // 3
        for c in cells:
            cx, cy = (c % 3) * cell, (c // 3) * cell
            s = rng.randint(cell // 2, cell - 8)
            ox, oy = rng.randint(2, cell - s - 2), rng.randint(2, cell - s - 2)
            _shape(draw, shape, (cx + ox, cy + oy, cx + ox + s, cy + oy + s), COLOURS[colour_name])
        plural = shape + ("s" if count > 1 else "")
        return image, f"{NUMBER_WORDS[count]} {colour_name} {plural}"
    if kind == "sum":
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        op = rng.choice(["+", "-"])
        if op == "-" and b > a:
            a, b = b, a
        draw.text((size // 2, size // 2), f"{a} {op} {b} =", fill=(0, 0, 0), font=default_font(56), anchor="mm")
        word = "an addition" if op == "+" else "a subtraction"
        return image, f"{word} task: {a} {op} {b}"
    # worksheet-like: rows of small tasks
    op = rng.choice(["+", "-", "x"])
    rows = rng.randint(3, 6)
    font = default_font(22)
    limit = rng.choice([10, 20, 100])
    for i in range(rows):
        a, b = rng.randrange(limit), rng.randrange(limit)
        draw.text((20, 15 + i * (size - 20) // rows), f"{a} {op} {b} = ___", fill=(0, 0, 0), font=font)
    name = {"+": "addition", "-": "subtraction", "x": "multiplication"}[op]
    return image, f"a worksheet with {NUMBER_WORDS[rows]} {name} tasks with numbers below {limit}"
