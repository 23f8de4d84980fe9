"""A seeded, offline generator of K-4 math worksheets with the labels upstream's generators would give them.

Every problem is drawn twice from one page: the question view with empty answer boxes, and the solution view
with the answers written in. Labels are chosen the way upstream's generators choose them (counting up to 10 ->
`NumbersSmaller10`, addition -> `Addition` + `ProcedureExecution`, ...) and always from the concepts of the
bound ontology release (see `vocabulary`). The same seed, count, size and release give byte-identical images.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from random import Random

from PIL import Image

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.worksheets import drawing
from edugraph_pipeline.worksheets.drawing import AnswerBox, Page, Style
from edugraph_pipeline.worksheets.items import VIEW_QUESTION, VIEW_SOLUTION, WorksheetItem
from edugraph_pipeline.worksheets.vocabulary import (
    NUMBER_LIMITS,
    MissingConcepts,
    Slot,
    missing_required,
    number_range_slot,
    optional,
    required,
    resolve_slots,
)

# Bump when a change to drawing or labelling changes what a seed produces (it is part of the content version).
GENERATOR_VERSION = "1"


@dataclass
class Drawn:
    page: Page
    answers: list[AnswerBox]
    facts: dict
    # Labels that depend on what was drawn (half hours, ascending order, the number range).
    slots: list[Slot] = field(default_factory=list)


@dataclass(frozen=True)
class Kind:
    name: str
    draw: Callable[[Random, Style, int | None], Drawn]
    slots: tuple[Slot, ...]
    # The `NumbersSmallerN` scopes the kind can draw in; empty when the kind draws no number range.
    number_limits: tuple[int, ...] = ()

    def usable_limits(self, ontology: Ontology) -> tuple[int, ...]:
        return tuple(limit for limit in self.number_limits if number_range_slot(limit).resolve(ontology))


@dataclass(frozen=True)
class GeneratedProblem:
    problem_id: str
    kind: str
    question: Image.Image
    solution: Image.Image
    labels: tuple[str, ...]
    facts: dict


def _numbers_in_range(rng: Random, limit: int, count: int, smallest: int = 1) -> list[int]:
    """`count` numbers below `limit`, at least one of them at or above the next smaller limit, so the drawn
    numbers really need the `NumbersSmaller{limit}` scope."""
    lower_limits = [bound for bound in NUMBER_LIMITS if bound < limit]
    floor = max(lower_limits) if lower_limits else smallest
    numbers = [rng.randint(smallest, limit - 1) for _ in range(count)]
    numbers[rng.randrange(count)] = rng.randint(max(floor, smallest), limit - 1)
    return numbers


def _range_slot(numbers: list[int], limit: int) -> Slot:
    assert max(numbers) < limit
    return number_range_slot(limit)


def draw_counting(rng: Random, style: Style, limit: int | None) -> Drawn:
    assert limit is not None
    shape = rng.choice(drawing.OBJECT_SHAPES)
    noun = {"circle": "dots", "square": "squares", "triangle": "triangles", "star": "stars", "apple": "apples",
            "heart": "hearts"}[shape]
    page = Page(style, f"How many {noun}?")
    groups = 1 if limit > 10 else rng.randint(1, 3)
    counts = _numbers_in_range(rng, limit, groups)
    arrangement = rng.choice(("scattered", "grid", "circle"))
    left, top, right, bottom = page.content_box
    answer_width = round(style.text_size * 3)
    row_height = (bottom - top) // groups
    answers = []
    for row, count in enumerate(counts):
        box = (left, top + row * row_height + 6, right - answer_width - 10, top + (row + 1) * row_height - 6)
        page.draw.rectangle(box, outline=style.accent, width=1)
        inner = (box[0] + 4, box[1] + 4, box[2] - 4, box[3] - 4)
        area = (inner[2] - inner[0]) * (inner[3] - inner[1])
        radius = max(6.0, min(28.0, (area / max(count, 1)) ** 0.5 / 3.2))
        if arrangement == "scattered":
            points = drawing.scattered_points(rng, count, inner, radius)
        elif arrangement == "grid":
            points = drawing.grid_points(count, inner, radius)
        else:
            points = drawing.circle_points(count, inner, radius)
        colour = rng.choice(drawing.ACCENT_COLOURS)
        for point in points:
            drawing.draw_object(page.draw, shape, point, radius, colour)
        answers.append(page.answer_box((right - answer_width // 2, (box[1] + box[3]) // 2), str(count)))
    return Drawn(page, answers, {"counts": counts, "shape": shape, "arrangement": arrangement},
                 [_range_slot(counts, limit)])


def _draw_equations(rng: Random, style: Style, limit: int, operator: str) -> Drawn:
    title = rng.choice(("Add.", "Solve.", "Find the sum.")) if operator == "+" else rng.choice(
        ("Subtract.", "Solve.", "Find the difference."))
    page = Page(style, title)
    rows = rng.randint(4, 8)
    columns = rng.choice((1, 2)) if limit <= 20 else 1
    results = _numbers_in_range(rng, limit, rows * columns, smallest=2)
    left, top, right, bottom = page.content_box
    column_width = (right - left) // columns
    row_height = min((bottom - top) // rows, round(style.text_size * 3))
    answers, equations, numbers = [], [], []
    for index, result in enumerate(results):
        column, row = divmod(index, rows)
        # Addition shows `a + b` with sum `result`; subtraction shows `result - b` with difference `a`,
        # so every number on the page (operands and answers) stays below the limit.
        first = rng.randint(1, result - 1)
        second = result - first
        operands, answer = ((first, second), result) if operator == "+" else ((result, second), first)
        shown = f"{operands[0]} {operator} {operands[1]} ="
        equations.append((shown, answer))
        numbers.extend((*operands, answer))
        x = left + column * column_width + 8
        y = top + row * row_height + row_height // 2
        page.text((x, y), shown, anchor="lm")
        text_width = page.draw.textlength(shown, font=style.font())
        answers.append(page.answer_box((round(x + text_width + style.text_size * 1.6), y), str(answer)))
    return Drawn(page, answers, {"equations": equations, "numbers": numbers}, [_range_slot(numbers, limit)])


def draw_addition(rng: Random, style: Style, limit: int | None) -> Drawn:
    assert limit is not None
    return _draw_equations(rng, style, limit, "+")


def draw_subtraction(rng: Random, style: Style, limit: int | None) -> Drawn:
    assert limit is not None
    return _draw_equations(rng, style, limit, "-")


def draw_comparison(rng: Random, style: Style, limit: int | None) -> Drawn:
    assert limit is not None
    page = Page(style, "Write < or >.")
    rows = rng.randint(4, 8)
    left, top, right, bottom = page.content_box
    row_height = min((bottom - top) // rows, round(style.text_size * 3))
    firsts = _numbers_in_range(rng, limit, rows)
    pairs, answers = [], []
    for row, first in enumerate(firsts):
        second = first
        while second == first:
            second = rng.randint(0, limit - 1)
        pairs.append((first, second))
        y = top + row * row_height + row_height // 2
        centre = (left + right) // 2
        page.text((centre - style.text_size * 2, y), str(first), anchor="rm")
        page.text((centre + style.text_size * 2, y), str(second), anchor="lm")
        answers.append(page.answer_box((centre, y), "<" if first < second else ">",
                                       width=round(style.text_size * 1.8)))
    numbers = [number for pair in pairs for number in pair]
    return Drawn(page, answers, {"pairs": pairs}, [_range_slot(numbers, limit)])


def draw_ordering(rng: Random, style: Style, limit: int | None) -> Drawn:
    assert limit is not None
    ascending = rng.random() < 0.6
    page = Page(style, "Smallest to largest" if ascending else "Largest to smallest")
    rows = rng.randint(2, 4)
    per_row = rng.randint(3, 5)
    left, top, right, bottom = page.content_box
    row_height = (bottom - top) // rows
    cell = (right - left) // per_row
    answers, sequences = [], []
    for row in range(rows):
        numbers = []
        while len(set(numbers)) != per_row:
            numbers = _numbers_in_range(rng, limit, per_row, smallest=0)
        sequences.append(numbers)
        y = top + row * row_height + row_height // 3
        for index, number in enumerate(numbers):
            page.text((left + cell * index + cell // 2, y), str(number), anchor="mm", fill=style.accent)
        for index, number in enumerate(sorted(numbers, reverse=not ascending)):
            answers.append(page.answer_box((left + cell * index + cell // 2, y + round(style.text_size * 2.2)),
                                           str(number)))
    direction = optional("AscendingOrder") if ascending else optional("DescendingOrder")
    flat = [number for numbers in sequences for number in numbers]
    return Drawn(page, answers, {"sequences": sequences, "ascending": ascending},
                 [direction, _range_slot(flat, limit)])


def draw_clock(rng: Random, style: Style, limit: int | None) -> Drawn:
    page = Page(style, "What time is it?")
    half_hours = rng.random() < 0.5
    count = rng.choice((2, 4, 6))
    columns = 2
    left, top, right, bottom = page.content_box
    rows = count // columns
    cell_width, cell_height = (right - left) // columns, (bottom - top) // rows
    radius = max(20, min(cell_width // 2 - 12, cell_height // 2 - style.text_size - 14))
    times, answers = [], []
    for index in range(count):
        row, column = divmod(index, columns)
        hour, minute = rng.randint(1, 12), (rng.choice((0, 30)) if half_hours else 0)
        times.append((hour, minute))
        cx = left + column * cell_width + cell_width // 2
        cy = top + row * cell_height + radius + 6
        drawing.draw_clock(page, (cx, cy), radius, hour, minute)
        answers.append(page.answer_box((cx, cy + radius + style.text_size + 4), f"{hour}:{minute:02d}",
                                       width=round(style.text_size * 3.6)))
    interval = optional("HalfHourIntervals") if any(minute for _, minute in times) else optional("HourIntervals")
    return Drawn(page, answers, {"times": times}, [interval])


def draw_ruler(rng: Random, style: Style, limit: int | None) -> Drawn:
    assert limit is not None
    page = Page(style, "How long is it?")
    rows = rng.randint(2, 4)
    left, top, right, bottom = page.content_box
    answer_width = round(style.text_size * 4)
    cm_pixels = min(26, (right - left - answer_width - 30) // 15)
    lengths = _numbers_in_range(rng, min(limit, 16), rows)
    row_height = (bottom - top) // rows
    answers = []
    for row, length in enumerate(lengths):
        y = top + row * row_height + 10
        x0 = left + 10
        thing_height = round(cm_pixels * 0.6)
        page.draw.rectangle((x0, y, x0 + length * cm_pixels, y + thing_height), fill=rng.choice(drawing.ACCENT_COLOURS),
                            outline=style.ink, width=1)
        drawing.draw_ruler(page, x0, y + thing_height + 4, max(length + 1, rng.randint(10, 15)), cm_pixels)
        answer = page.answer_box((right - answer_width // 2 - 30, y + thing_height), str(length),
                                 width=round(style.text_size * 2.2))
        page.text((answer.box[2] + 4, y + thing_height), "cm", anchor="lm")
        answers.append(answer)
    return Drawn(page, answers, {"lengths_cm": lengths}, [_range_slot(lengths, limit)])


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_word(number: int) -> str:
    if number < 20:
        return _ONES[number]
    tens, ones = divmod(number, 10)
    if number < 100:
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    raise ValueError(f"number_word supports 0..99, got {number}")


def draw_writing(rng: Random, style: Style, limit: int | None) -> Drawn:
    assert limit is not None
    page = Page(style, "Write the number.")
    rows = rng.randint(4, 7)
    numbers = _numbers_in_range(rng, limit, rows, smallest=0)
    left, top, right, bottom = page.content_box
    row_height = min((bottom - top) // rows, round(style.text_size * 3))
    answers = []
    for row, number in enumerate(numbers):
        y = top + row * row_height + row_height // 2
        page.text((left + 8, y), number_word(number), anchor="lm")
        answers.append(page.answer_box((right - style.text_size * 2, y), str(number),
                                       width=round(style.text_size * 2.6)))
    return Drawn(page, answers, {"numbers": numbers}, [_range_slot(numbers, limit)])


_ADDITION = required("Addition", "IntegerAddition", "IntegerAdditon")
_SUBTRACTION = required("Subtraction", "IntegerSubtraction")
_PROCEDURE = required("ProcedureExecution")
_NUMERALS = (required("ArabicNumerals"), optional("Base10"))

KINDS: tuple[Kind, ...] = (
    Kind("counting", draw_counting,
         (required("NumerationWithIntegers"), required("AdditiveCount"), optional("PhysicalNumbers"), _PROCEDURE),
         (10, 20)),
    Kind("addition", draw_addition, (_ADDITION, *_NUMERALS, optional("TwoOperands"), _PROCEDURE), (10, 20, 100)),
    Kind("subtraction", draw_subtraction, (_SUBTRACTION, *_NUMERALS, optional("TwoOperands"), _PROCEDURE),
         (10, 20, 100)),
    Kind("comparison", draw_comparison, (required("NumericInequality", "NumericComparison"), *_NUMERALS, _PROCEDURE),
         (10, 20, 100)),
    Kind("ordering", draw_ordering, (required("NumericOrder"), *_NUMERALS, _PROCEDURE), (10, 20, 100)),
    Kind("clock", draw_clock, (required("MeasuringTime"), required("AnalogClock"), required("Interpretation"))),
    Kind("ruler", draw_ruler,
         (required("MeasuringObjects"), required("LengthMeasurement"), required("PhysicalRuler"),
          optional("CentimeterScale"), _PROCEDURE),
         (10, 20)),
    Kind("writing", draw_writing, (required("DigitNotation"), *_NUMERALS, required("TextualReception")),
         (10, 20, 100)),
)


def kind_availability(ontology: Ontology) -> tuple[list[Kind], dict[str, str]]:
    """The kinds this release can label, and for each other kind why not."""
    available, unavailable = [], {}
    for kind in KINDS:
        missing = missing_required(kind.slots, ontology)
        if missing:
            unavailable[kind.name] = f"release {ontology.version} lacks " + "; ".join(
                " / ".join(slot.alternatives) for slot in missing)
        elif kind.number_limits and not kind.usable_limits(ontology):
            unavailable[kind.name] = f"release {ontology.version} has no NumbersSmallerN scope for this kind"
        else:
            available.append(kind)
    return available, unavailable


def generate_problems(
    ontology: Ontology,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = drawing.PAGE_SIZE,
    kinds: tuple[str, ...] | None = None,
) -> Iterator[GeneratedProblem]:
    """`count` problems of the kinds `ontology` can label, each from its own seeded random stream."""
    available, unavailable = kind_availability(ontology)
    if kinds is not None:
        unknown = set(kinds) - {kind.name for kind in KINDS}
        if unknown:
            raise ValueError(f"unknown worksheet kind(s) {sorted(unknown)}; known: {[k.name for k in KINDS]}")
        available = [kind for kind in available if kind.name in kinds]
    if not available:
        reasons = "; ".join(f"{name}: {why}" for name, why in unavailable.items()) or "no kind selected"
        raise MissingConcepts(f"ontology release {ontology.version} can label no worksheet kind ({reasons})")
    for index in range(count):
        # One stream per problem: problem i looks the same whatever `count` is.
        rng = Random(f"edugraph-worksheets:{seed}:{index}")
        kind = rng.choice(available)
        limits = kind.usable_limits(ontology)
        limit = rng.choice(limits) if limits else None
        drawn = kind.draw(rng, Style.random(rng, size), limit)
        labels = resolve_slots((*kind.slots, *drawn.slots), ontology, kind.name)
        question, solution = drawing.render_views(drawn.page, drawn.answers)
        yield GeneratedProblem(
            problem_id=f"sample-{seed}-{index:06d}",
            kind=kind.name,
            question=question,
            solution=solution,
            labels=labels,
            facts={**drawn.facts, "number_limit": limit},
        )


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def problem_items(problem: GeneratedProblem, source: str = "sample") -> list[WorksheetItem]:
    return [
        WorksheetItem(encode_png(image), problem.labels, problem.problem_id, view, problem.kind, source,
                      facts=problem.facts)
        for view, image in ((VIEW_QUESTION, problem.question), (VIEW_SOLUTION, problem.solution))
    ]
