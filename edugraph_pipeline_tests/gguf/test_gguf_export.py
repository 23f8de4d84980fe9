"""End to end through llama.cpp: tiny merged model -> GGUF + mmproj -> Q4_K_M -> load both -> classify one image.

Slow and dependent on the llama.cpp build (skipped with a reason when it is absent):

    bash scripts/build-llama-cpp.sh                      # once, ~15 min on 2 cores
    .venv/bin/python -m pytest -m slow edugraph_pipeline_tests/gguf -v
"""

from __future__ import annotations

import json

import pytest

from edugraph_pipeline.llama_cpp_build import LlamaCpp
from edugraph_pipeline_tests.answer_checks import assert_model_answer
from edugraph_pipeline_tests.conftest import requires_shared, skip_or_fail

LLAMA = LlamaCpp.locate()

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def llama_cpp_build():
    if not LLAMA.available():
        skip_or_fail(
            f"llama.cpp build absent in {LLAMA.root} (run scripts/build-llama-cpp.sh or set EDUGRAPH_LLAMA_CPP_DIR)"
        )


@pytest.fixture(scope="module")
def merged_folder(tmp_path_factory):
    """The tiny Qwen3-VL as merged_model writes it (model files + processor + ontology.json of v0.21.0)."""
    from edugraph_pipeline.training.tiny_model import build_tiny_model
    from edugraph_pipeline_tests.conftest import load_shared_release

    folder = build_tiny_model(tmp_path_factory.mktemp("merged") / "model")
    load_shared_release("v0.21.0").save(folder / "ontology.json")
    return folder


@pytest.fixture(scope="module")
def exported(merged_folder, tmp_path_factory):
    from edugraph_pipeline.gguf.convert import export_gguf

    out = tmp_path_factory.mktemp("gguf") / "gguf_model"
    before = sorted(p.name for p in merged_folder.iterdir())
    manifest = export_gguf(merged_folder, out, "Q4_K_M", llama=LLAMA)
    assert sorted(p.name for p in merged_folder.iterdir()) == before, "the merged model folder must stay untouched"
    return out, manifest


@requires_shared
def test_export_q4_k_m_with_mmproj(exported):
    out, manifest = exported
    text, mmproj = manifest["text_model"], manifest["mmproj"]
    assert (out / text["file"]).is_file() and (out / mmproj["file"]).is_file() and (out / "ontology.json").is_file()
    assert json.loads((out / "gguf.json").read_text(encoding="utf-8")) == manifest
    assert text["architecture"] == "qwen3vl" and mmproj["architecture"] == "clip"
    # 2 layers x 11 tensors + token_embd + output_norm (tied embeddings: no output.weight)
    assert text["tensor_count"] == 24
    assert mmproj["tensor_count"] > 20
    assert manifest["preprocessor_config"] == "derived"  # transformers 5 saved processor_config.json only
    assert manifest["image_tokens"] == {"image_min_tokens": 4, "image_max_tokens": 64}
    # A 128-wide model: K-quant blocks are 256 wide, so llama-quantize falls back per tensor; every weight
    # matrix must still be quantized (none left F16) and the fallbacks are recorded, not hidden.
    types = manifest["quantization"]["tensor_types"]
    assert "F16" not in types, types
    assert manifest["quantization"]["fallbacks"], "a 128-wide model cannot be pure Q4_K: fallbacks expected"
    # tensors 37.9 MiB -> 20 MiB; the file also holds the 151,936-token vocabulary and merges (~10 MiB) unchanged
    assert text["size_bytes"] < 0.7 * manifest["f16_size_bytes"]


@requires_shared
def test_loads_and_classifies_one_image(exported):
    from edugraph_pipeline.gguf.smoke import smoke_picture
    from edugraph_pipeline.inference.classifier import Classifier

    out, _ = exported
    with Classifier.from_folder(out, backend="gguf", llama=LLAMA, max_new_tokens=32) as classifier:
        assert classifier.backend.prompt.endswith('<|im_start|>assistant\n{"')
        result = classifier.classify([smoke_picture()])[0]
    assert result.ok
    # llama.cpp wrote only what the v0.21.0 answers are made of (the mask of the shipped ontology reached it),
    # and the answer is what that release makes of the text
    assert classifier.ontology.version == "v0.21.0"
    assert_model_answer(result.answer, result.raw, classifier.ontology)


@requires_shared
def test_prompt_matches_the_transformers_path(exported, merged_folder):
    from transformers import AutoProcessor

    from edugraph_pipeline.inference.constraint import ANSWER_PREFIX
    from edugraph_pipeline.inference.llama_cpp_backend import render_prompt
    from edugraph_pipeline.prompts import classification_messages

    processor = AutoProcessor.from_pretrained(str(merged_folder), local_files_only=True)
    expected = processor.apply_chat_template(classification_messages(), add_generation_prompt=True, tokenize=False)
    template = (merged_folder / "chat_template.jinja").read_text(encoding="utf-8")
    assert render_prompt(template) == expected + ANSWER_PREFIX


@requires_shared
def test_smoke_text_image_and_cli(exported):
    from edugraph_pipeline.gguf.smoke import smoke_test
    from edugraph_pipeline.ontology.model import Ontology

    out, _ = exported
    report = smoke_test(out, llama=LLAMA)
    assert report["ok"] and all(report["checks"].values()), report["checks"]
    assert report["text"]["completion_tokens"] >= 1 and report["text"]["tokens"]
    assert report["image"]["tokens"]
    bound = Ontology.load(out / "ontology.json")  # what the export ships: v0.21.0
    assert bound.version == "v0.21.0"
    assert_model_answer(report["image"]["answer"], report["image"]["raw"], bound)
    assert report["mtmd_cli"]["ok"] and report["mtmd_cli"]["image_encoding"] and report["mtmd_cli"]["completion"]


@requires_shared
def test_asset_materializes_from_a_merged_model_artifact(merged_folder, tmp_path):
    import shutil

    import dagster as dg

    from edugraph_pipeline.defs.model.gguf import gguf_model
    from edugraph_pipeline.defs.resources import ArtifactStoreResource
    from edugraph_pipeline.storage import ArtifactStore

    store = ArtifactStore(tmp_path / "out")
    with store.publish("merged_model", None, {"ontology_version": "v0.21.0", "info": {"parameters": 1}}) as staging:
        shutil.copytree(merged_folder, staging / "model")
    result = dg.materialize(
        [gguf_model],
        resources={"artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out"))},
        run_config={"ops": {"gguf_model": {"config": {"quant": "Q8_0", "llama_cpp_dir": str(LLAMA.root)}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("gguf_model")[0].metadata
    assert metadata["quantization"].value == "Q8_0" and metadata["fallback_tensors"].value == 0
    assert metadata["text_model_tensors"].value == 24 and metadata["smoke_mtmd_cli"].value is True
    folder = store.asset_dir("gguf_model")
    assert {"edugraph-Q8_0.gguf", "mmproj-edugraph-F16.gguf", "gguf.json", "smoke.json", "ontology.json",
            "lineage.json"} <= {p.name for p in folder.iterdir()}
    assert store.lineage("gguf_model")["quant"] == "Q8_0"
    versions = tmp_path / "out" / "gguf_model" / ".versions" / "latest"
    assert {p.name for p in versions.iterdir()} == {store.current("gguf_model").name, ".commit.lock"}, "no leftovers"


@requires_shared
def test_f16_gguf_answers_exactly_like_transformers(merged_folder, tmp_path):
    """Same prompt, image resolution, M-RoPE/deepstack, mask and stop: at F16 the two paths agree token for token
    (quantized files differ: the untrained tiny model's logits are nearly flat, so rounding flips the argmax)."""
    import random

    from edugraph_pipeline.gguf.convert import export_gguf
    from edugraph_pipeline.inference.classifier import Classifier
    from edugraph_pipeline.training.tiny_model import generate_picture

    export_gguf(merged_folder, tmp_path / "f16", "F16", llama=LLAMA)
    rng = random.Random(0)
    images = [generate_picture(rng, 224)[0] for _ in range(2)]
    expected = [r.raw for r in Classifier.from_folder(merged_folder, device="cpu", max_new_tokens=24).classify(images)]
    with Classifier.from_folder(tmp_path / "f16", backend="gguf", llama=LLAMA, max_new_tokens=24) as classifier:
        assert [r.raw for r in classifier.classify(images)] == expected
