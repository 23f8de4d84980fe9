"""Small generated datasets in the exact on-disk shapes of `knowledge_dataset` and `worksheet_dataset`.

For tests, the throughput bench and quick learning checks on the tiny profile; the pictures are simple Pillow
drawings (rows of sums with a given operation and number range, or noise "photos" labelled UnsupportedMaterial).
"""

from __future__ import annotations

import hashlib
import io
import random

from edugraph_pipeline.labels import format_answer, format_unsupported

# (operation, number limit) -> labels; "photo" -> UnsupportedMaterial
WORKSHEET_CLASSES: dict[str, dict | None] = {
    "add10": {"Area": ["IntegerAddition"], "Scope": ["NumbersSmaller10"], "Ability": ["ProcedureExecution"]},
    "add100": {"Area": ["IntegerAddition"], "Scope": ["NumbersSmaller100"], "Ability": ["ProcedureExecution"]},
    "sub10": {"Area": ["IntegerSubtraction"], "Scope": ["NumbersSmaller10"], "Ability": ["ProcedureExecution"]},
    "sub100": {"Area": ["IntegerSubtraction"], "Scope": ["NumbersSmaller100"], "Ability": ["ProcedureExecution"]},
    "mul10": {"Area": ["IntegerMultiplication"], "Scope": ["NumbersSmaller10"], "Ability": ["ProcedureExecution"]},
    "photo": None,
}
_OPS = {"add": "+", "sub": "-", "mul": "x"}


def class_answer(name: str) -> str:
    labels = WORKSHEET_CLASSES[name]
    return format_unsupported() if labels is None else format_answer(labels)


def draw_worksheet(name: str, rng: random.Random, size: tuple[int, int] = (320, 240)):
    from PIL import Image, ImageDraw

    from edugraph_pipeline.training.tiny_model.pictures import default_font as _font

    width, height = size
    if name == "photo":
        import numpy as np

        nprng = np.random.default_rng(rng.randrange(2**31))
        block = rng.choice([2, 8, 16])
        base = np.array([rng.randrange(40, 220) for _ in range(3)])
        small = nprng.normal(0, rng.choice([20, 50, 80]), (height // block + 1, width // block + 1, 3))
        noise = np.kron(small, np.ones((block, block, 1)))[:height, :width]
        return Image.fromarray(np.clip(base[None, None, :] + noise, 0, 255).astype("uint8"), "RGB")
    op, limit = _OPS[name[:3]], int(name[3:])
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    rows = rng.randint(3, 5)
    cols = rng.randint(1, 2)
    font = _font(rng.randint(20, 26))
    draw.text((10, 4), rng.choice(["Worksheet", "Practice", "Solve", "Name: ____"]), fill=(60, 60, 60), font=_font(16))
    for r in range(rows):
        for c in range(cols):
            a, b = rng.randrange(limit), rng.randrange(limit)
            if op == "-" and b > a:
                a, b = b, a
            x = 12 + c * width // cols + rng.randint(0, 8)
            y = 30 + r * (height - 40) // rows
            draw.text((x, y), f"{a} {op} {b} = __", fill=(0, 0, 0), font=font)
    return image


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def worksheet_rows(n: int, seed: int = 0, classes: tuple[str, ...] | None = None, size=(320, 240)) -> list[dict]:
    rng = random.Random(seed)
    names = list(classes or WORKSHEET_CLASSES)
    rows = []
    for i in range(n):
        name = names[i % len(names)]
        png = _png(draw_worksheet(name, rng, size))
        rows.append(
            {
                "image": {"bytes": png, "path": None},
                "labels": class_answer(name),
                "problem_id": f"{name}-{seed}-{i}",
                "view": "generated",
                "kind": "unsupported" if name == "photo" else "worksheet",
                "source": "synthetic",
                "image_sha256": hashlib.sha256(png).hexdigest(),
            }
        )
    return rows


def make_worksheet_dataset(folder, n_train: int = 12, n_validation: int = 6, seed: int = 0, classes=None, size=(320, 240)):
    """A `worksheet_dataset`-shaped DatasetDict (train/validation) saved to `folder`; returns it."""
    from datasets import Dataset, DatasetDict, Features, Image, Value

    features = Features(
        {
            "image": Image(),
            "labels": Value("string"),
            "problem_id": Value("string"),
            "view": Value("string"),
            "kind": Value("string"),
            "source": Value("string"),
            "image_sha256": Value("string"),
        }
    )
    dd = DatasetDict(
        {
            "train": Dataset.from_list(worksheet_rows(n_train, seed, classes, size), features=features),
            "validation": Dataset.from_list(worksheet_rows(n_validation, seed + 1000, classes, size), features=features),
        }
    )
    if folder is not None:
        dd.save_to_disk(str(folder))
    return dd


def make_knowledge_dataset(folder, n: int = 16):
    """A `knowledge_dataset`-shaped Dataset (kind, concept, instruction, output, messages) saved to `folder`."""
    from datasets import Dataset

    concepts = [
        ("IntegerAddition", "Area", "Adding whole numbers."),
        ("IntegerSubtraction", "Area", "Subtracting whole numbers."),
        ("NumbersSmaller10", "Scope", "Numbers from 0 to 9."),
        ("NumbersSmaller100", "Scope", "Numbers from 0 to 99."),
        ("ProcedureExecution", "Ability", "Carrying out a known procedure."),
    ]
    rows = []
    for i in range(n):
        name, dim, definition = concepts[i % len(concepts)]
        if i % 2 == 0:
            kind, instruction, output = "definition_to_label", f"Which EduGraph concept is defined as: {definition}", format_answer({dim: [name]})
        else:
            kind, instruction, output = "label_to_definition", f"What does the EduGraph concept '{name}' mean?", definition
        rows.append(
            {
                "kind": kind,
                "concept": name,
                "instruction": instruction,
                "output": output,
                "messages": [{"role": "user", "content": instruction}, {"role": "assistant", "content": output}],
            }
        )
    ds = Dataset.from_list(rows)
    if folder is not None:
        ds.save_to_disk(str(folder))
    return ds
