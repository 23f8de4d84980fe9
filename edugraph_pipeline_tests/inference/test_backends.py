"""The backend layer: inference imports nothing of the export package (`gguf` imports `inference`), the CLI finds
the latest GGUF export, and a llama.cpp model that cannot run says why (no build, a torch device)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from edugraph_pipeline.inference.classify_command import classify_main
from edugraph_pipeline.inference.loading import latest_gguf_folder
from edugraph_pipeline.storage import ArtifactStore

INFERENCE = Path(__file__).resolve().parents[2] / "edugraph_pipeline" / "inference"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_inference_imports_nothing_of_gguf():
    found = {
        (path.name, name)
        for path in sorted(INFERENCE.glob("*.py"))
        for name in _imports(path)
        if name == "edugraph_pipeline.gguf" or name.startswith("edugraph_pipeline.gguf.")
    }
    assert found == set()
    assert "edugraph_pipeline.llama_cpp_build" in _imports(INFERENCE / "llama_cpp_backend.py")
    assert not any("dagster" in name for path in INFERENCE.glob("*.py") for name in _imports(path))


def _gguf_folder(folder: Path, ontology) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"text_model": {"file": "edugraph-Q4_K_M.gguf"}, "mmproj": {"file": "mmproj-edugraph-F16.gguf"},
                "image_tokens": {"image_min_tokens": 4, "image_max_tokens": 64}}
    (folder / "gguf.json").write_text(json.dumps(manifest), encoding="utf-8")
    ontology.save(folder / "ontology.json")


def test_latest_gguf_folder_is_the_current_version_of_gguf_model(tmp_path, ontology):
    store = ArtifactStore(tmp_path)
    with store.publish("gguf_model", None, {}) as staging:
        _gguf_folder(staging, ontology)
    folder = latest_gguf_folder(tmp_path)
    assert folder == store.current("gguf_model")
    assert folder.resolve() == (tmp_path / "gguf_model" / "latest").resolve()
    empty = tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError, match=re.escape(f"no GGUF model in {empty / 'gguf_model' / 'latest'} (no gguf")):
        latest_gguf_folder(empty)


def test_gguf_backend_errors_name_the_cause(tmp_path, ontology, monkeypatch, capsys, images):
    folder = tmp_path / "gguf"
    _gguf_folder(folder, ontology)
    sheet = tmp_path / "sheet.png"
    images[0].save(sheet)
    monkeypatch.setenv("EDUGRAPH_LLAMA_CPP_DIR", str(tmp_path / "no-build"))
    assert classify_main([str(sheet), "--backend", "gguf", "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: llama.cpp build under {tmp_path / 'no-build'} is incomplete")
    assert "scripts/build-llama-cpp.sh" in err
    assert classify_main([str(sheet), "--backend", "gguf", "--model", str(folder), "--device", "cuda"]) == 2
    assert capsys.readouterr().err == "error: --device cuda: the gguf backend runs on the CPU, it takes no device\n"
    assert classify_main([str(sheet), "--backend", "gguf", "--model", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: no gguf.json, not a gguf_model folder\n"
