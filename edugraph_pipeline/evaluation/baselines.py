"""Baselines the labeller must beat, computed from the train split alone and scored like the model.

* most frequent label set (`metrics.most_frequent_answer`): the same answer for every item, a strawman;
* 1-nearest neighbour on tiny pictures: every image shrunk to a 48×48 greyscale thumbnail, the train split as
  the memory, and the answer of the train image at the smallest Euclidean distance as the prediction. Upstream's
  labels follow an exercise's look closely (one generator draws one kind of exercise), so this pixel lookup is a
  strong baseline: a model that loses to it has not learned to read the worksheet.

Each returns the `EvaluationReport` that `metrics.evaluate_predictions` builds for the model (per-dimension micro
and macro F1, exact match, ...), so reports, gates and charts treat baselines and the model alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer
from edugraph_pipeline.evaluation.report import (  # noqa: F401  (strongest: what a margin is taken against)
    MOST_FREQUENT_BASELINE,
    EvaluationReport,
    strongest,
)
from edugraph_pipeline.ontology.model import Ontology

THUMBNAIL_SIDE = 48
MOST_FREQUENT = MOST_FREQUENT_BASELINE
NEAREST_NEIGHBOUR = "nearest_neighbour"


def thumbnail(image: Image.Image) -> np.ndarray:
    """The image as a flat vector of 48×48 greyscale values in [0, 1] (aspect ratio not kept: layout matters)."""
    small = image.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0


def thumbnails(images: Iterable[Image.Image]) -> np.ndarray:
    vectors = [thumbnail(image) for image in images]
    return np.stack(vectors) if vectors else np.zeros((0, THUMBNAIL_SIDE * THUMBNAIL_SIDE), dtype=np.float32)


def nearest_neighbours(memory: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index into `memory` of each query's nearest row (Euclidean; a tie goes to the earlier row)."""
    if len(memory) == 0:
        raise ValueError("the nearest-neighbour baseline needs at least one train image")
    distances = (queries**2).sum(1)[:, None] - 2.0 * queries @ memory.T + (memory**2).sum(1)[None, :]
    return distances.argmin(axis=1)


def _images(split) -> Iterable[Image.Image]:
    for row in split.select_columns(["image"]):  # one decoded image at a time: real releases are large
        yield row["image"]


def nearest_neighbour_answers(train, validation) -> list[str]:
    """For each validation row, the `labels` answer of the train row whose thumbnail is nearest."""
    memory = thumbnails(_images(train))
    answers = list(train["labels"])
    return [answers[index] for index in nearest_neighbours(memory, thumbnails(_images(validation)))]


def nearest_neighbour_baseline(train, validation, ontology: Ontology) -> EvaluationReport:
    """The 1-NN baseline scored on `validation` (both `datasets.Dataset` splits of the worksheet dataset)."""
    return evaluate_predictions(list(validation["labels"]), nearest_neighbour_answers(train, validation), ontology)


def most_frequent_baseline(train, validation, ontology: Ontology) -> EvaluationReport:
    """The train split's most frequent answer, given for every validation row."""
    answer = most_frequent_answer(train["labels"])
    return evaluate_predictions(list(validation["labels"]), [answer] * len(validation), ontology)


def baseline_answers(train, validation) -> dict[str, list[str]]:
    """Each baseline's answer for every validation row (canonical answer strings), by baseline name."""
    return {
        MOST_FREQUENT: [most_frequent_answer(train["labels"])] * len(validation),
        NEAREST_NEIGHBOUR: nearest_neighbour_answers(train, validation),
    }


def baselines(train, validation, ontology: Ontology) -> dict[str, EvaluationReport]:
    expected = list(validation["labels"])
    return {name: evaluate_predictions(expected, answers, ontology)
            for name, answers in baseline_answers(train, validation).items()}
