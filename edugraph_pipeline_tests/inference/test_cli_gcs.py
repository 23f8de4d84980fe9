"""`edugraph classify` against a store in GCS (issue 15): a tiny merged model published to the bucket (the
emulator) from one machine; the CLI, a separate process with an empty cache, finds it through
EDUGRAPH_DATA_DIR=gs://..., materialises it into its mirror (checked against the manifest) and labels an image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from edugraph_pipeline.storage import open_store
from edugraph_pipeline_tests.answer_checks import assert_model_answer
from edugraph_pipeline_tests.kit.gcp import StorageEmulator

BUCKET = "edugraph-classify-test"
URL = f"gs://{BUCKET}/pipeline"


def test_classify_reads_the_merged_model_from_a_gcs_store(tiny_model_folder, classifier, images, tmp_path, monkeypatch):
    sheet = tmp_path / "sheet.png"
    images[0].save(sheet)
    with StorageEmulator(BUCKET) as gcs:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.host)
        writer = open_store(URL, cache_dir=tmp_path / "writer")
        with writer.publish("merged_model", None, {"ontology_version": "v0.21.0"}) as staging:
            shutil.copytree(tiny_model_folder, staging / "model")  # what merged_model writes
        cache = tmp_path / "reader-cache"
        environment = {**os.environ, "EDUGRAPH_DATA_DIR": URL, "EDUGRAPH_CACHE_DIR": str(cache)}
        done = subprocess.run(
            [str(Path(sys.executable).with_name("edugraph")), "classify", str(sheet), "--raw", "--device", "cpu",
             "--max-new-tokens", str(classifier.backend.max_new_tokens)],
            env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    (answer,) = [json.loads(line) for line in done.stdout.splitlines()]  # strict JSON
    # The model read through the bucket answers as the folder that was published does, text for text.
    (expected,) = classifier.classify([sheet])
    assert answer == {**expected.answer, "raw": expected.raw}
    assert_model_answer({k: v for k, v in answer.items() if k != "raw"}, answer["raw"], classifier.ontology)
    # the reader's mirror holds the published version, file for file (sizes match what was written)
    version = (cache / "artifacts" / "merged_model" / "latest").resolve()
    written = {p.relative_to(tiny_model_folder).as_posix(): p.stat().st_size
               for p in tiny_model_folder.rglob("*") if p.is_file()}
    mirrored = {p.relative_to(version / "model").as_posix(): p.stat().st_size
                for p in (version / "model").rglob("*") if p.is_file()}
    assert mirrored == written
    assert not (Path(tmp_path) / "gs:").exists()  # never a local folder named after the URL
