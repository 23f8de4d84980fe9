"""The architecture arithmetic against the models transformers builds (on the meta device: nothing allocated):
parameter counts, every linear's module path and width, and the adapters PEFT creates for a target set."""

from __future__ import annotations

import copy
import json

import pytest

from edugraph_pipeline.training.architecture import (
    ALL_LINEAR,
    ArchitectureError,
    from_config,
    linears,
    lora_parameters,
    lora_targets,
    parameter_counts,
)
from edugraph_pipeline.training.lora_targets import LANGUAGE_MODEL_LINEAR
from edugraph_pipeline.training.published_models import PUBLISHED_CONFIGS, for_base_model


def cut(config: dict, text_layers: int, vision_layers: int) -> dict:
    """`config` with fewer layers (widths kept): a Qwen3.5 cut keeps whole groups of 3 linear + 1 full layer."""
    config = copy.deepcopy(config)
    config["text_config"]["num_hidden_layers"] = text_layers
    vision = config["vision_config"]
    vision["depth"] = vision_layers
    if vision.get("deepstack_visual_indexes"):
        vision["deepstack_visual_indexes"] = list(range(vision_layers))[-len(vision["deepstack_visual_indexes"]):]
    return config


def meta_model(config: dict):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    hf_config = AutoConfig.for_model(**copy.deepcopy(config))
    with torch.device("meta"):
        return AutoModelForImageTextToText.from_config(hf_config, dtype=torch.bfloat16)


CASES = {
    "qwen3-vl-2b-cut": cut(PUBLISHED_CONFIGS["Qwen/Qwen3-VL-2B-Instruct"], 2, 3),
    "qwen3-vl-8b-cut": cut(PUBLISHED_CONFIGS["Qwen/Qwen3-VL-8B-Instruct"], 2, 3),  # untied head, other widths
    "qwen3.5-4b-cut": cut(PUBLISHED_CONFIGS["Qwen/Qwen3.5-4B"], 8, 2),
    "qwen3.5-27b-cut": cut(PUBLISHED_CONFIGS["Qwen/Qwen3.5-27B"], 4, 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_counts_and_linears_match_the_transformers_model(name):
    import torch

    config = CASES[name]
    model = meta_model(config)
    arch = from_config(config)
    counts = parameter_counts(arch)
    assert counts.total == sum(p.numel() for p in model.parameters())
    assert counts.vision == sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.visual"))
    built = {
        n: (m.in_features, m.out_features, m.bias is not None)
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n != "lm_head"
    }
    assert {lin.path: (lin.in_features, lin.out_features, lin.bias) for lin in linears(arch)} == built
    language = sum(m.weight.numel() for n, m in model.named_modules()
                   if isinstance(m, torch.nn.Linear) and n.startswith("model.language_model"))
    assert counts.text_linear == language


@pytest.mark.parametrize("name", ["qwen3-vl-2b-cut", "qwen3.5-4b-cut"])
@pytest.mark.parametrize("targets", [ALL_LINEAR, LANGUAGE_MODEL_LINEAR, ["q_proj", "in_proj_qkv"]])
def test_lora_targets_are_the_modules_peft_adapts(name, targets):
    from peft import LoraConfig, get_peft_model

    config = CASES[name]
    peft_model = get_peft_model(meta_model(config), LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    adapted = {n.removeprefix("base_model.model.") for n, m in peft_model.named_modules() if hasattr(m, "lora_A")}
    chosen = lora_targets(from_config(config), targets)
    assert {lin.path for lin in chosen} == adapted
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert lora_parameters(chosen, 4) == trainable


def test_published_qwen3_vl_4b_matches_the_known_split():
    """README's "Real-size runs": 4.44 B = 3.63 B text decoder + 0.39 B tied embeddings + 0.42 B vision tower."""
    counts = parameter_counts(for_base_model("Qwen/Qwen3-VL-4B-Instruct"))
    assert round(counts.total / 1e9, 2) == 4.44
    assert round(counts.vision / 1e9, 2) == 0.42
    assert counts.lm_head == 0  # tied
    assert round(151936 * 2560 / 1e9, 2) == 0.39
    assert round((counts.text_linear + counts.text_other - 151936 * 2560) / 1e9, 2) == 3.63


def test_published_shapes_equal_the_hub_folders_the_tests_build():
    from edugraph_pipeline_tests.kit.hub_models import HUB_IDS, hub_config

    assert set(HUB_IDS) == {"2b", "4b", "8b", "qwen3.5-4b"}
    for size, hub_id in HUB_IDS.items():
        built = json.loads(hub_config(size).to_json_string())
        assert from_config(built) == from_config(PUBLISHED_CONFIGS[hub_id]), hub_id
    cut = from_config(json.loads(hub_config("qwen3.5-4b", text_layers=2).to_json_string()))
    assert cut.text.layer_types == ("linear_attention", "full_attention")  # a cut keeps both kinds of layer


def test_qwen3_5_layer_types_follow_the_full_attention_interval():
    arch = for_base_model("Qwen/Qwen3.5-27B")
    assert len(arch.text.layer_types) == 64
    assert arch.text.layer_types[:4] == ("linear_attention",) * 3 + ("full_attention",)
    assert arch.text.layer_types.count("full_attention") == 16
    assert arch.vision.deepstack_taps == 0


def test_tiny_profile_reads_the_config_the_pipeline_builds():
    from edugraph_pipeline.training.tiny_model import TinySpec

    arch = for_base_model(None)
    spec = TinySpec()
    assert (arch.text.hidden, arch.text.layers, arch.vision.depth) == (spec.text_hidden, spec.text_layers,
                                                                       spec.vision_depth)


def test_a_local_folder_config_is_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(PUBLISHED_CONFIGS["Qwen/Qwen3.5-9B"]), encoding="utf-8")
    assert for_base_model(str(tmp_path)) == for_base_model("Qwen/Qwen3.5-9B")


def test_bad_configs_name_what_is_wrong(tmp_path):
    broken = copy.deepcopy(PUBLISHED_CONFIGS["Qwen/Qwen3.5-4B"])
    del broken["text_config"]["linear_num_value_heads"]
    with pytest.raises(ArchitectureError, match=r"text_config\.linear_num_value_heads is missing"):
        from_config(broken)
    with pytest.raises(ArchitectureError, match="model_type 'llama'"):
        from_config({"model_type": "llama"})
    broken = copy.deepcopy(PUBLISHED_CONFIGS["Qwen/Qwen3.5-4B"])
    broken["text_config"]["layer_types"] = ["full_attention"] * 3
    with pytest.raises(ArchitectureError, match="must list 32 entries"):
        from_config(broken)
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArchitectureError, match="not JSON"):
        for_base_model(str(tmp_path))
    with pytest.raises(ArchitectureError, match="neither a published config"):
        for_base_model("someone/unknown-model")
