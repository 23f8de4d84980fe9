"""llama.cpp's converter on the real architecture at the Hub's 4B shape (issue 10): merged-model folder -> GGUF +
mmproj -> Q4_K_M -> text and image smoke generation.

The folder is what `merged_model` writes (`merge_into_folder`: weights in the base's bf16, processor saved by
transformers, prompts, ontology) for a Qwen3-VL-4B-Instruct-shaped base (published widths, 3 text + 2 vision
layers, random weights). Three text layers, because the published models inject their deepstack features into
text layers before the last one, and llama.cpp relies on that: with a deepstack tap on the last text layer its
graph adds the tap after selecting the output rows and aborts (`GGML_ASSERT(ggml_can_repeat(b, a))`). Slow and needs the llama.cpp build (`scripts/build-llama-cpp.sh`).
"""

from __future__ import annotations

import json

import pytest

from edugraph_pipeline.llama_cpp_build import LlamaCpp
from edugraph_pipeline_tests.conftest import requires_shared, skip_or_fail

LLAMA = LlamaCpp.locate()

pytestmark = [pytest.mark.slow, requires_shared]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    if not LLAMA.available():
        skip_or_fail(f"llama.cpp build absent in {LLAMA.root} (run scripts/build-llama-cpp.sh)")
    from edugraph_pipeline.gguf.convert import export_gguf
    from edugraph_pipeline.training.merge import merge_into_folder
    from edugraph_pipeline_tests.conftest import load_shared_release
    from edugraph_pipeline_tests.kit.hub_models import build_hub_model

    root = tmp_path_factory.mktemp("hub4b")
    base = build_hub_model("4b", root / "Qwen3-VL-4B-Instruct", text_layers=3, vision_layers=2)
    merged = root / "merged" / "model"
    info = merge_into_folder(str(base), [], str(base), merged)  # no adapters: the merged layout, the base weights
    assert info["dtype"] == "bfloat16"
    load_shared_release("v0.21.0").save(merged / "ontology.json")
    out = root / "gguf_model"
    return out, export_gguf(merged, out, "Q4_K_M", llama=LLAMA)


def test_the_4b_shape_converts_with_its_vision_projector(exported):
    out, manifest = exported
    text, mmproj = manifest["text_model"], manifest["mmproj"]
    assert text["architecture"] == "qwen3vl" and mmproj["architecture"] == "clip"
    assert text["tensor_count"] == 3 * 11 + 2  # per layer 11 tensors; token_embd + output_norm (tied, no output)
    assert json.loads((out / "gguf.json").read_text(encoding="utf-8")) == manifest
    # 2560-wide matrices are whole K-quant blocks: Q4_K_M without any fallback, far smaller than F16.
    assert not manifest["quantization"]["fallbacks"], manifest["quantization"]["fallbacks"]
    assert text["size_bytes"] < 0.5 * manifest["f16_size_bytes"]


def test_the_4b_shape_generates_from_text_and_from_an_image(exported):
    from edugraph_pipeline.gguf.smoke import smoke_test

    out, _ = exported
    report = smoke_test(out, llama=LLAMA)
    assert report["ok"] and all(report["checks"].values()), report["checks"]
    assert report["image"]["tokens"] and report["text"]["completion_tokens"] >= 1
