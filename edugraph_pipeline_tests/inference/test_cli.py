"""`edugraph classify` (classify_main) on a real tiny model folder, and the default model lookup."""

from __future__ import annotations

import json
import shutil

import pytest

from edugraph_pipeline.inference.classify_command import classify_main
from edugraph_pipeline.inference.loading import latest_model_folder
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline_tests.answer_checks import assert_model_answer


@pytest.fixture
def sheets(tmp_path, images):
    paths = []
    for index, image in enumerate(images[:2]):
        path = tmp_path / f"sheet{index}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def _answers(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _library_results(classifier, paths: list[str]) -> list[dict]:
    """What the command must print for `paths`: the library's answer with the model's text, image by image."""
    return [{**result.answer, "raw": result.raw} for result in classifier.classify(paths)]


def test_classify_prints_one_answer_per_image(tiny_model_folder, classifier, sheets, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_text("nope")
    argv = [sheets[0], str(bad), sheets[1], "--model", str(tiny_model_folder), "--batch-size", "2", "--raw"]
    argv += ["--device", "cpu"]
    status = classify_main(argv + ["--max-new-tokens", str(classifier.backend.max_new_tokens)])
    out, err = capsys.readouterr()
    assert status == 1
    answers = _answers(out)  # strict JSON, one line per readable image
    # The two readable images, in input order, each answered as the library answers it (the untrained model
    # writes a different text for each, so a line of the wrong image or of no model at all does not pass).
    assert answers == _library_results(classifier, sheets)
    assert answers[0]["raw"] != answers[1]["raw"]
    for answer in answers:
        assert_model_answer({k: v for k, v in answer.items() if k != "raw"}, answer["raw"], classifier.ontology)
    assert err.splitlines() == [f"error: {bad}: not a readable image (UnidentifiedImageError)"]


def test_classify_raw_and_default_model_from_data_dir(
    tiny_model_folder, classifier, sheets, tmp_path, monkeypatch, capsys
):
    root = tmp_path / "out"
    with ArtifactStore(root).publish("merged_model", None, {"ontology_version": "v0.21.0"}) as staging:
        shutil.copytree(tiny_model_folder, staging / "model")  # what merged_model writes
    monkeypatch.setenv("EDUGRAPH_DATA_DIR", str(root))
    tokens = str(classifier.backend.max_new_tokens)
    status = classify_main([sheets[0], "--raw", "--device", "cpu", "--max-new-tokens", tokens])
    out, err = capsys.readouterr()
    assert status == 0, err
    (answer,) = _answers(out)
    # the published model (the same weights) says what the library says on the folder it was copied from
    assert answer == _library_results(classifier, sheets[:1])[0]
    assert_model_answer({k: v for k, v in answer.items() if k != "raw"}, answer["raw"], classifier.ontology)


def test_missing_model_and_bad_arguments(tmp_path, monkeypatch, sheets, capsys):
    monkeypatch.setenv("EDUGRAPH_DATA_DIR", str(tmp_path / "empty"))
    assert classify_main(sheets[:1]) == 2
    assert "no merged model in" in capsys.readouterr().err
    assert classify_main(sheets[:1] + ["--model", str(tmp_path / "none")]) == 2
    assert "model folder does not exist" in capsys.readouterr().err
    assert classify_main(sheets[:1] + ["--batch-size", "0"]) == 2
    with pytest.raises(SystemExit):
        classify_main([])


def test_latest_model_folder_is_the_current_version_of_merged_model(tmp_path):
    store = ArtifactStore(tmp_path)
    for weights in (b"old", b"new"):
        with store.publish("merged_model", None, {}) as staging:
            (staging / "model").mkdir()
            (staging / "model" / "config.json").write_text("{}")
            (staging / "model" / "model.safetensors").write_bytes(weights)
    folder = latest_model_folder(tmp_path)
    assert (folder / "model.safetensors").read_bytes() == b"new"
    assert folder.resolve() == (tmp_path / "merged_model" / "latest" / "model").resolve()
    with pytest.raises(FileNotFoundError, match="materialize merged_model first"):
        latest_model_folder(tmp_path / "elsewhere")
    with store.publish("merged_model", None, {}) as staging:  # a folder without a model is no model
        (staging / "model").mkdir()
    with pytest.raises(FileNotFoundError, match="no merged model in"):
        latest_model_folder(tmp_path)
