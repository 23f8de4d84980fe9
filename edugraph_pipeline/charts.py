"""Small charts that the Dagster UI shows inline on an asset's page.

The UI renders a Markdown metadata value in place only while it is shorter than 1,000 characters; anything
longer hides behind "[Show Markdown]". A 1-bit PNG line chart of ~100 points is ~500 bytes, so a base64 data URI
of it fits: `inline_line_chart` shrinks the point count until the whole Markdown does. Plain Python (Pillow).
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw

INLINE_MARKDOWN_LIMIT = 1000  # characters: the UI's limit for rendering Markdown metadata in place


def line_chart_png(values: list[float], *, width: int = 320, height: int = 72) -> bytes:
    """A black-on-white line chart of `values` (left to right, min at the bottom) with two axis lines."""
    if len(values) < 2:
        raise ValueError("a line chart needs at least two values")
    image = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(image)
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    last = len(values) - 1
    points = [(2 + i * (width - 5) / last, 2 + (high - v) / span * (height - 5)) for i, v in enumerate(values)]
    draw.line(points, fill=0, width=2)
    draw.line([(0, height - 1), (width - 1, height - 1)], fill=0)
    draw.line([(0, 0), (0, height - 1)], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def bucket_means(values: list[float], buckets: int) -> list[float]:
    """`values` reduced to at most `buckets` points, each the mean of a run of neighbours (keeps the trend)."""
    if len(values) <= buckets:
        return list(values)
    size = len(values) / buckets
    return [
        sum(chunk) / len(chunk)
        for chunk in (values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)] for i in range(buckets))
    ]


def inline_line_chart(values: list[float], *, alt: str, caption: str) -> str:
    """Markdown of a line chart of `values` plus a caption line, short enough for the UI to show it in place."""
    for points in (120, 80, 50, 30, 15):
        png = line_chart_png(bucket_means(values, points))
        markdown = f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})\n\n{caption}"
        if len(markdown) < INLINE_MARKDOWN_LIMIT:
            return markdown
    return caption  # a curve too jagged to fit even at 15 points: the caption still says where it went
