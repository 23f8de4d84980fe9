from __future__ import annotations

import pytest

from edugraph_pipeline_tests.evaluation.helpers import small_ontology


@pytest.fixture(scope="session")
def ontology():
    return small_ontology()


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory, ontology):
    """The training helper's seeded tiny Qwen3-VL (untrained: garbage output) with the small ontology bound."""
    from edugraph_pipeline.training.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("merged") / "model")
    ontology.save(folder / "ontology.json")
    return folder


@pytest.fixture(scope="session")
def classifier(tiny_model_folder):
    from edugraph_pipeline.inference.classifier import Classifier

    return Classifier.from_folder(tiny_model_folder, device="cpu", max_new_tokens=24)


@pytest.fixture(scope="session")
def images():
    """Three pictures of different sizes (one greyscale, one RGBA) to exercise batching and padding."""
    from PIL import Image, ImageDraw

    first = Image.new("RGB", (224, 160), "white")
    ImageDraw.Draw(first).text((20, 60), "3 + 4 = ___", fill="black")
    second = Image.new("L", (96, 320), 200)
    third = Image.new("RGBA", (400, 300), (10, 120, 40, 255))
    return [first, second, third]
