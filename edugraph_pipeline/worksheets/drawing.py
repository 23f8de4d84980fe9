"""Drawing primitives for generated worksheets: page style, fonts, counting objects, clocks and rulers.

Everything is drawn with Pillow from shapes and fonts that ship with the installed packages, so generation
works offline and gives the same pixels for the same seed on every machine with the same package versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from random import Random

from PIL import Image, ImageDraw, ImageFont

PAGE_SIZE = (480, 640)
_DEJAVU_FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
)
# Answers are written in a slanted face, like a pupil's or teacher's pen.
_HANDWRITING_FACES = ("DejaVuSans-Oblique.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSans-BoldOblique.ttf")
_PAPER = ((255, 255, 255), (253, 250, 240), (245, 248, 255), (250, 245, 235), (240, 250, 242))
_INK = ((20, 20, 20), (30, 40, 90), (60, 30, 30), (15, 60, 40))
ACCENT_COLOURS = ((220, 60, 60), (40, 120, 220), (240, 160, 20), (60, 170, 90), (150, 70, 200), (230, 100, 170))
_PEN = ((210, 30, 30), (20, 90, 200), (20, 130, 60))


@lru_cache(maxsize=1)
def _font_dir() -> Path | None:
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    except ImportError:
        return None
    return folder if (folder / _DEJAVU_FACES[0]).exists() else None


def font_faces(handwriting: bool = False) -> tuple[str, ...]:
    """Names of the font faces available here; "default" is Pillow's own scalable font."""
    folder = _font_dir()
    faces = _HANDWRITING_FACES if handwriting else _DEJAVU_FACES
    available = tuple(face for face in faces if folder and (folder / face).exists())
    return available or ("default",)


@lru_cache(maxsize=256)
def font(face: str, size: int) -> ImageFont.FreeTypeFont:
    folder = _font_dir()
    if face == "default" or folder is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(folder / face), size=size)


@dataclass(frozen=True)
class Style:
    """The look of one worksheet; drawn at random per problem so kinds do not share one appearance."""

    size: tuple[int, int]
    paper: tuple[int, int, int]
    ink: tuple[int, int, int]
    accent: tuple[int, int, int]
    pen: tuple[int, int, int]
    face: str
    answer_face: str
    text_size: int
    margin: int
    header: bool

    @classmethod
    def random(cls, rng: Random, size: tuple[int, int] = PAGE_SIZE) -> Style:
        scale = min(size) / min(PAGE_SIZE)
        return cls(
            size=size,
            paper=rng.choice(_PAPER),
            ink=rng.choice(_INK),
            accent=rng.choice(ACCENT_COLOURS),
            pen=rng.choice(_PEN),
            face=rng.choice(font_faces()),
            answer_face=rng.choice(font_faces(handwriting=True)),
            text_size=max(10, round(rng.randint(18, 24) * scale)),
            margin=max(8, round(rng.randint(20, 40) * scale)),
            header=rng.random() < 0.6,
        )

    def font(self, scale: float = 1.0) -> ImageFont.FreeTypeFont:
        return font(self.face, max(8, round(self.text_size * scale)))

    def answer_font(self, scale: float = 1.0) -> ImageFont.FreeTypeFont:
        return font(self.answer_face, max(8, round(self.text_size * scale)))


@dataclass(frozen=True)
class AnswerBox:
    """Where an answer goes: blank on the question view, filled in on the solution view."""

    box: tuple[int, int, int, int]
    text: str
    outlined: bool = True


class Page:
    """A worksheet page being drawn: a title, an optional name/date header and a content area below."""

    def __init__(self, style: Style, title: str):
        self.style = style
        self.image = Image.new("RGB", style.size, style.paper)
        self.draw = ImageDraw.Draw(self.image)
        width, _ = style.size
        y = style.margin
        if style.header:
            small = style.font(0.7)
            self.draw.text((style.margin, y), "Name: ____________", font=small, fill=style.ink)
            self.draw.text((width - style.margin, y), "Date: ________", font=small, fill=style.ink, anchor="ra")
            y += round(style.text_size * 1.6)
        title_font = style.font(1.15)
        self.draw.text((width // 2, y), title, font=title_font, fill=style.ink, anchor="ma")
        y += round(style.text_size * 1.8)
        self.draw.line((style.margin, y, width - style.margin, y), fill=style.accent, width=2)
        self.top = y + round(style.text_size * 0.8)

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        width, height = self.style.size
        return self.style.margin, self.top, width - self.style.margin, height - self.style.margin

    def text(self, xy, text: str, scale: float = 1.0, anchor: str = "la", fill=None) -> None:
        self.draw.text(xy, text, font=self.style.font(scale), fill=fill or self.style.ink, anchor=anchor)

    def answer_box(self, center: tuple[int, int], text: str, width: int | None = None) -> AnswerBox:
        height = round(self.style.text_size * 1.5)
        width = width or round(self.style.text_size * 2.2)
        x, y = center
        box = (x - width // 2, y - height // 2, x + width // 2, y + height // 2)
        self.draw.rectangle(box, outline=self.style.ink, width=2)
        return AnswerBox(box, text)


def render_views(page: Page, answers: list[AnswerBox]) -> tuple[Image.Image, Image.Image]:
    """The question view (answer boxes empty) and the solution view (answers written into them)."""
    question = page.image.copy()
    solution = page.image.copy()
    draw = ImageDraw.Draw(solution)
    for answer in answers:
        left, top, right, bottom = answer.box
        # Shrink long answers ("10:30") until they fit their box, the way a pupil writes smaller.
        scale = 1.1
        while scale > 0.5 and draw.textlength(answer.text, font=page.style.answer_font(scale)) > right - left - 4:
            scale -= 0.1
        draw.text(
            ((left + right) // 2, (top + bottom) // 2),
            answer.text,
            font=page.style.answer_font(scale),
            fill=page.style.pen,
            anchor="mm",
        )
    return question, solution


OBJECT_SHAPES = ("circle", "square", "triangle", "star", "apple", "heart")


def draw_object(draw: ImageDraw.ImageDraw, shape: str, center: tuple[float, float], radius: float, colour) -> None:
    """One countable object; each shape stays inside the circle of `radius` around `center`."""
    x, y = center
    r = radius
    outline = tuple(max(0, c - 80) for c in colour)
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=outline, width=2)
    elif shape == "square":
        s = r * 0.8
        draw.rectangle((x - s, y - s, x + s, y + s), fill=colour, outline=outline, width=2)
    elif shape == "triangle":
        draw.polygon([(x, y - r), (x + r * 0.87, y + r * 0.5), (x - r * 0.87, y + r * 0.5)], fill=colour, outline=outline)
    elif shape == "star":
        points = []
        for i in range(10):
            angle = -math.pi / 2 + i * math.pi / 5
            distance = r if i % 2 == 0 else r * 0.45
            points.append((x + distance * math.cos(angle), y + distance * math.sin(angle)))
        draw.polygon(points, fill=colour, outline=outline)
    elif shape == "apple":
        body = r * 0.8
        draw.ellipse((x - body, y - body * 0.8, x + body, y + body), fill=colour, outline=outline, width=2)
        draw.line((x, y - body * 0.8, x + r * 0.15, y - r), fill=(90, 60, 20), width=max(2, round(r / 6)))
        draw.ellipse((x + r * 0.1, y - r, x + r * 0.55, y - r * 0.75), fill=(60, 150, 60))
    elif shape == "heart":
        lobe = r * 0.5
        draw.ellipse((x - r, y - r * 0.7, x, y + r * 0.1 - lobe * 0.2), fill=colour)
        draw.ellipse((x, y - r * 0.7, x + r, y + r * 0.1 - lobe * 0.2), fill=colour)
        draw.polygon([(x - r * 0.97, y - r * 0.2), (x + r * 0.97, y - r * 0.2), (x, y + r)], fill=colour)
    else:
        raise ValueError(f"unknown object shape {shape!r}; expected one of {OBJECT_SHAPES}")


def draw_clock(page: Page, center: tuple[int, int], radius: int, hour: int, minute: int) -> None:
    """An analog clock face with hour marks, numerals and both hands showing `hour:minute`."""
    draw, style = page.draw, page.style
    x, y = center
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(255, 255, 255), outline=style.ink, width=3)
    numeral_font = font(style.face, max(8, radius // 5))
    for mark in range(60):
        angle = math.radians(mark * 6 - 90)
        inner = radius * (0.85 if mark % 5 == 0 else 0.92)
        draw.line(
            (x + inner * math.cos(angle), y + inner * math.sin(angle),
             x + radius * 0.97 * math.cos(angle), y + radius * 0.97 * math.sin(angle)),
            fill=style.ink,
            width=2 if mark % 5 == 0 else 1,
        )
        if mark % 5 == 0:
            number = mark // 5 or 12
            distance = radius * 0.7
            draw.text((x + distance * math.cos(angle), y + distance * math.sin(angle)), str(number),
                      font=numeral_font, fill=style.ink, anchor="mm")
    minute_angle = math.radians(minute * 6 - 90)
    hour_angle = math.radians((hour % 12 + minute / 60) * 30 - 90)
    draw.line((x, y, x + radius * 0.8 * math.cos(minute_angle), y + radius * 0.8 * math.sin(minute_angle)),
              fill=style.ink, width=3)
    draw.line((x, y, x + radius * 0.5 * math.cos(hour_angle), y + radius * 0.5 * math.sin(hour_angle)),
              fill=style.accent, width=6)
    draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=style.ink)


def draw_ruler(page: Page, left: int, top: int, centimetres: int, cm_pixels: int) -> None:
    """A ruler from 0 to `centimetres` with millimetre ticks, starting at `left`."""
    draw, style = page.draw, page.style
    height = round(cm_pixels * 1.1)
    right = left + centimetres * cm_pixels
    draw.rectangle((left - 8, top, right + 8, top + height), fill=(250, 230, 160), outline=style.ink, width=2)
    label_font = font(style.face, max(8, cm_pixels // 2))
    for millimetre in range(centimetres * 10 + 1):
        x = left + millimetre * cm_pixels / 10
        length = height * (0.45 if millimetre % 10 == 0 else 0.3 if millimetre % 5 == 0 else 0.18)
        draw.line((x, top, x, top + length), fill=style.ink, width=2 if millimetre % 10 == 0 else 1)
        if millimetre % 10 == 0 and cm_pixels >= 14:
            draw.text((x, top + height * 0.5), str(millimetre // 10), font=label_font, fill=style.ink, anchor="ma")


def scattered_points(rng: Random, count: int, box: tuple[int, int, int, int], radius: float) -> list[tuple[float, float]]:
    """`count` centres inside `box` whose objects do not overlap (falls back to a grid when crowded)."""
    left, top, right, bottom = box
    points: list[tuple[float, float]] = []
    for _ in range(count * 200):
        if len(points) == count:
            return points
        candidate = (rng.uniform(left + radius, right - radius), rng.uniform(top + radius, bottom - radius))
        if all(math.dist(candidate, other) > 2.2 * radius for other in points):
            points.append(candidate)
    return grid_points(count, box, radius)


def grid_points(count: int, box: tuple[int, int, int, int], radius: float) -> list[tuple[float, float]]:
    left, top, right, bottom = box
    columns = max(1, min(count, int((right - left) // (2.4 * radius))))
    points = []
    for index in range(count):
        row, column = divmod(index, columns)
        points.append((left + radius * 1.2 + column * 2.4 * radius, top + radius * 1.2 + row * 2.4 * radius))
    return points


def circle_points(count: int, box: tuple[int, int, int, int], radius: float) -> list[tuple[float, float]]:
    left, top, right, bottom = box
    cx, cy = (left + right) / 2, (top + bottom) / 2
    ring = max(radius * 1.5, min(right - left, bottom - top) / 2 - radius * 1.2)
    return [
        (cx + ring * math.cos(2 * math.pi * i / count), cy + ring * math.sin(2 * math.pi * i / count))
        for i in range(count)
    ]
