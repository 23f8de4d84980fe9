"""The classifier on a real tiny Qwen3-VL folder: batching, constrained generation, repair, bad inputs."""

from __future__ import annotations

import re
import shutil

import pytest
from PIL import Image

from edugraph_pipeline.inference.backend import ModelFolderError
from edugraph_pipeline.inference.classifier import Classifier
from edugraph_pipeline.inference.constraint import ANSWER_PREFIX, answer_texts
from edugraph_pipeline.inference.images import ImageInputError, load_image
from edugraph_pipeline.inference.transformers_backend import JsonObjectEnd
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.ontology.model import DIMENSIONS

ANSWER_CHARS = re.compile(r'[A-Za-z0-9{}\[\]",: ]*')


def assert_valid_answer(answer: dict, ontology) -> None:
    if answer == UNSUPPORTED_MATERIAL:
        return
    assert list(answer) == list(DIMENSIONS)
    for dimension, names in answer.items():
        assert names == sorted(set(names))
        assert all(ontology.concepts[name].dimension == dimension for name in names)


def test_classify_batches_give_valid_answers_equal_to_one_by_one(classifier, images, ontology):
    batched = classifier.classify(images, batch_size=2)
    single = [classifier.classify([image], batch_size=1)[0] for image in images]
    assert [r.source for r in batched] == ["<image 0>", "<image 1>", "<image 2>"]
    for result, alone in zip(batched, single):
        assert result.ok and result.error is None
        assert result.raw.startswith(ANSWER_PREFIX)
        assert ANSWER_CHARS.fullmatch(result.raw), result.raw  # the vocabulary mask: answer tokens only
        assert_valid_answer(result.answer, ontology)
        assert result.raw == alone.raw  # left padding does not change greedy output
        assert isinstance(result.text, str)


def test_generation_is_bounded(classifier, images):
    backend = classifier.backend
    tokens = backend.tokenizer.encode(classifier.classify(images[:1])[0].raw, add_special_tokens=False)
    assert len(tokens) <= backend.max_new_tokens + 2  # prefix + bound (+1 for re-tokenisation)


def test_unconstrained_generation_is_still_repaired(tiny_model_folder, images, ontology):
    free = Classifier.from_folder(tiny_model_folder, device="cpu", max_new_tokens=16, constrain=False, prefix="")
    assert free.backend.vocabulary is None
    for result in free.classify(images[:2], batch_size=2):
        assert_valid_answer(result.answer, ontology)


def test_paths_and_bad_inputs(classifier, images, tmp_path, ontology):
    good = tmp_path / "sheet.png"
    images[0].save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    folder = tmp_path / "folder.png"
    folder.mkdir()
    missing = tmp_path / "missing.png"
    inputs = [good, empty, text, truncated, folder, missing, str(good)]
    with pytest.raises(ImageInputError, match=re.escape(str(empty))):
        classifier.classify(inputs)
    results = classifier.classify(inputs, errors="return")
    assert [r.ok for r in results] == [True, False, False, False, False, False, True]
    assert results[0].source == str(good) and results[0].raw == results[6].raw
    assert_valid_answer(results[0].answer, ontology)
    messages = [r.error for r in results if not r.ok]
    assert messages[0] == f"{empty}: empty file"
    assert messages[1].startswith(f"{text}: not a readable image")
    assert messages[2].startswith(f"{truncated}: ")
    assert messages[3] == f"{folder}: not a regular file"
    assert messages[4] == f"{missing}: no such file"
    assert all(r.answer is None for r in results if not r.ok)
    with pytest.raises(ValueError):
        classifier.classify(inputs, errors="ignore")


def test_limits_on_size_and_pixels(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (300, 300), "white").save(big)
    with pytest.raises(ImageInputError, match="exceeds the 1000 pixel cap"):
        load_image(big, max_pixels=1000)
    with pytest.raises(ImageInputError, match="exceeds the 10 byte limit"):
        load_image(big, max_bytes=10)
    with pytest.raises(ImageInputError, match="<image>: 300x300 exceeds"):
        load_image(Image.new("RGB", (300, 300)), max_pixels=1000)
    with pytest.raises(ImageInputError, match="not an image path"):
        load_image(42)
    assert load_image(Image.new("L", (4, 4))).mode == "RGB"


def test_from_folder_errors(tmp_path, tiny_model_folder, ontology):
    with pytest.raises(ModelFolderError, match="does not exist"):
        Classifier.from_folder(tmp_path / "nope")
    with pytest.raises(ModelFolderError, match="no config.json"):
        Classifier.from_folder(tmp_path)
    bare = tmp_path / "bare"
    bare.mkdir()
    for item in tiny_model_folder.iterdir():
        if item.name != "ontology.json":
            (bare / item.name).symlink_to(item)
    with pytest.raises(ModelFolderError, match="no bound ontology"):
        Classifier.from_folder(bare)
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    with pytest.raises(ModelFolderError, match="not a normalised ontology"):
        Classifier.from_folder(bare, broken)
    override = tmp_path / "ontology.json"
    shutil.copy(tiny_model_folder / "ontology.json", override)
    assert Classifier.from_folder(bare, override, device="cpu").ontology.version == ontology.version


class _CharTokenizer:
    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_json_object_end_stops_each_row_when_its_object_closes():
    import torch

    stop = JsonObjectEnd(_CharTokenizer(), batch_size=2, prefix='{"')
    rows = ['Area": ["A}"]}x', 'Area": [']
    done_at = []
    for step in range(max(map(len, rows))):
        column = [ord(r[step]) if step < len(r) else ord(" ") for r in rows]
        done = stop(torch.tensor([column]).T, None)
        done_at.append(done.tolist())
    assert done_at[12] == [False, False]  # the "}" inside a string did not count, "]" closed the list
    assert done_at[13] == [True, False]  # the closing '}' of the object
    assert done_at[-1] == [True, False]


def test_answer_vocabulary_covers_every_valid_answer(classifier, ontology):
    backend = classifier.backend
    allowed = set(backend.vocabulary.ids)
    for text in answer_texts(ontology):
        assert set(backend.tokenizer.encode(text, add_special_tokens=False)) <= allowed
    assert set(backend.eos_ids) <= allowed
    assert len(allowed) < 100  # a mask, not the whole vocabulary
