"""The baselines: exact numbers on hand-made pictures, and the nearest-neighbour figure on the real shared release."""

from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from edugraph_pipeline.evaluation.baselines import (
    MOST_FREQUENT,
    NEAREST_NEIGHBOUR,
    baselines,
    nearest_neighbour_answers,
    nearest_neighbours,
    strongest,
    thumbnail,
)
from edugraph_pipeline_tests.conftest import skip_or_fail
from edugraph_pipeline_tests.evaluation.helpers import UNSUPPORTED, answer
from edugraph_pipeline_tests.kit.remotes import SHARED_DIR

FEATURES = datasets.Features({"image": datasets.Image(), "labels": datasets.Value("string")})
A = answer(["Addition"], ["NumbersSmaller10"], ["ProcedureExecution"])
B = answer(["Subtraction"], ["NumbersSmaller100"], ["ProcedureExecution"])
SUBTRACTION_SMALL = answer(["Subtraction"], ["NumbersSmaller10"], ["ProcedureExecution"])
SHARED_RELEASE = SHARED_DIR / "edugraph-exercises" / "edugraph-exercises-A.tar.gz"


def split(rows: list[tuple[int, str]]) -> datasets.Dataset:
    """Rows of (grey level, answer) as uniform 30×20 pictures."""
    images = [Image.new("RGB", (30, 20), (grey, grey, grey)) for grey, _ in rows]
    return datasets.Dataset.from_dict({"image": images, "labels": [text for _, text in rows]}, features=FEATURES)


def test_thumbnail_is_48_by_48_greyscale_in_unit_range():
    vector = thumbnail(Image.new("RGBA", (700, 480), (255, 255, 255, 255)))
    assert vector.shape == (48 * 48,) and vector.dtype == np.float32 and vector.min() == vector.max() == 1.0


def test_nearest_neighbour_ties_go_to_the_earlier_train_row():
    memory = np.array([[0.0], [2.0], [2.0]], dtype=np.float32)
    assert nearest_neighbours(memory, np.array([[1.0], [1.9], [5.0]], dtype=np.float32)).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="at least one train image"):
        nearest_neighbours(memory[:0], memory)


def test_both_baselines_on_hand_made_pictures_give_the_numbers_worked_out_by_hand(ontology):
    train = split([(0, A), (10, A), (255, B), (128, UNSUPPORTED)])
    validation = split([(30, A), (240, SUBTRACTION_SMALL), (140, UNSUPPORTED), (200, A)])
    assert nearest_neighbour_answers(train, validation) == [A, B, UNSUPPORTED, B]
    reports = baselines(train, validation, ontology)
    knn, frequent = reports[NEAREST_NEIGHBOUR], reports[MOST_FREQUENT]
    # 1-NN: rows 0 and 2 exactly right; Area 2 of 3 right (micro P = R = 2/3); Scope 1 of 3.
    assert knn.exact_match == 0.5 and knn.refusal_accuracy == 1.0
    assert knn.dimensions["Area"].micro_f1 == pytest.approx(2 / 3)
    assert knn.dimensions["Area"].macro_f1 == pytest.approx(2 / 3)
    assert knn.dimensions["Scope"].micro_f1 == pytest.approx(1 / 3)
    assert knn.dimensions["Scope"].macro_f1 == pytest.approx(0.25)  # NumbersSmaller10: F1 0.5; NumbersSmaller100: 0
    assert knn.dimensions["Ability"].micro_f1 == 1.0
    # Most frequent (A for all): rows 0 and 3 right, the refusal missed; every Scope is NumbersSmaller10.
    assert frequent.exact_match == 0.5 and frequent.refusal_accuracy == 0.0
    assert frequent.dimensions["Area"].micro_f1 == pytest.approx(2 / 3)
    assert frequent.dimensions["Scope"].micro_f1 == 1.0
    assert knn.micro_f1_mean == pytest.approx((2 / 3 + 1 / 3 + 1) / 3)
    assert frequent.micro_f1_mean == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert strongest(reports) == MOST_FREQUENT


def test_nearest_neighbour_on_the_shared_release_validation_split(tmp_path):
    """The release's own 890/178 split; 1-NN reaches micro-F1 0.87 and exact match 0.57 (101 of 178), the
    most-frequent label set 0.20 and 0.02 (measured with Pillow's bilinear 48×48 greyscale thumbnails)."""
    if not SHARED_RELEASE.is_file():
        skip_or_fail(f"{SHARED_RELEASE} is absent (see ../shared/README.md)")
    from edugraph_pipeline.worksheets.content_sources import read_content
    from edugraph_pipeline.worksheets.dataset import SPLIT_KEPT, build_dataset
    from edugraph_pipeline_tests.worksheets.worksheet_helpers import load_release

    ontology = load_release("v0.21.0")
    release = read_content(str(SHARED_RELEASE), Path(tmp_path), ontology)
    dataset, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    assert summary.split_method == SPLIT_KEPT and summary.rows == {"train": 890, "validation": 178}
    assert summary.split_overlap == {"problem_id": [], "image_sha256": []}
    reports = baselines(dataset["train"], dataset["validation"], ontology)
    knn, frequent = reports[NEAREST_NEIGHBOUR], reports[MOST_FREQUENT]
    assert knn.exact_match == pytest.approx(101 / 178, abs=0.006)  # one row either way
    measured = {"Area": 0.818, "Scope": 0.888, "Ability": 0.913}
    for dimension, micro_f1 in measured.items():
        assert knn.dimensions[dimension].micro_f1 == pytest.approx(micro_f1, abs=0.01)
    assert knn.micro_f1_mean == pytest.approx(0.873, abs=0.01)
    assert frequent.exact_match == pytest.approx(4 / 178, abs=0.001)
    assert frequent.micro_f1_mean == pytest.approx(0.197, abs=0.005)
    assert strongest(reports) == NEAREST_NEIGHBOUR
