"""llama.cpp's converter on the real architectures at the Hub's 4B shapes (issue 10: Qwen3-VL-4B; issue 25:
Qwen3.5-4B): merged-model folder -> GGUF + mmproj -> Q4_K_M -> text and image smoke generation.

The folder is what `merged_model` writes (`merge_into_folder`: weights in the base's bf16, processor saved by
transformers, prompts, ontology) for a Qwen3-VL-4B-Instruct-shaped base (published widths, 3 text + 2 vision
layers, random weights). Three text layers, because the published models inject their deepstack features into
text layers before the last one, and llama.cpp relies on that: with a deepstack tap on the last text layer its
graph adds the tap after selecting the output rows and aborts (`GGML_ASSERT(ggml_can_repeat(b, a))`). Qwen3.5:
four text layers, the published pattern (three Gated DeltaNet, one gated full attention), converted without the
multi-token-prediction head transformers never loads (`convert.TEXT_CONVERT_FLAGS`). Slow and needs the llama.cpp
build (`scripts/build-llama-cpp.sh`).
"""

from __future__ import annotations

import json

import pytest

from edugraph_pipeline.llama_cpp_build import LlamaCpp
from edugraph_pipeline_tests.conftest import requires_shared, skip_or_fail

LLAMA = LlamaCpp.locate()

pytestmark = [pytest.mark.slow, requires_shared]


SHAPES = {  # size -> (folder name, text layers, text architecture, text tensors)
    "4b": ("Qwen3-VL-4B-Instruct", 3, "qwen3vl", 3 * 11 + 2),  # per layer 11; token_embd + output_norm (tied)
    "qwen3.5-4b": ("Qwen3.5-4B", 4, "qwen35", 55),
}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def exported(request, tmp_path_factory):
    if not LLAMA.available():
        skip_or_fail(f"llama.cpp build absent in {LLAMA.root} (run scripts/build-llama-cpp.sh)")
    from edugraph_pipeline.gguf.convert import export_gguf
    from edugraph_pipeline.training.merge import merge_into_folder
    from edugraph_pipeline_tests.conftest import load_shared_release
    from edugraph_pipeline_tests.kit.hub_models import build_hub_model

    size = request.param
    name, text_layers, _, _ = SHAPES[size]
    root = tmp_path_factory.mktemp(size)
    base = build_hub_model(size, root / name, text_layers=text_layers, vision_layers=2)
    merged = root / "merged" / "model"
    info = merge_into_folder(str(base), [], str(base), merged)  # no adapters: the merged layout, the base weights
    assert info["dtype"] == "bfloat16"
    load_shared_release("v0.21.0").save(merged / "ontology.json")
    out = root / "gguf_model"
    return size, base, out, export_gguf(merged, out, "Q4_K_M", llama=LLAMA)


def test_the_4b_shape_converts_with_its_vision_projector(exported):
    from edugraph_pipeline.gguf.convert import vision_weights_sha256

    size, base, out, manifest = exported
    text, mmproj = manifest["text_model"], manifest["mmproj"]
    _, _, architecture, tensors = SHAPES[size]
    assert text["architecture"] == architecture and mmproj["architecture"] == "clip"
    assert text["tensor_count"] == tensors
    # no adapter touched the vision tower: the mmproj is made of the base's own vision weights
    assert mmproj["vision_weights_sha256"] == vision_weights_sha256(base)
    assert json.loads((out / "gguf.json").read_text(encoding="utf-8")) == manifest
    # 2560-wide matrices are whole K-quant blocks: Q4_K_M without any fallback, far smaller than F16.
    assert not manifest["quantization"]["fallbacks"], manifest["quantization"]["fallbacks"]
    assert text["size_bytes"] < 0.5 * manifest["f16_size_bytes"]


def test_the_4b_shape_generates_from_text_and_from_an_image(exported):
    from edugraph_pipeline.gguf.smoke import smoke_test

    _, _, out, _ = exported
    report = smoke_test(out, llama=LLAMA)
    assert report["ok"] and all(report["checks"].values()), report["checks"]
    assert report["image"]["tokens"] and report["text"]["completion_tokens"] >= 1
