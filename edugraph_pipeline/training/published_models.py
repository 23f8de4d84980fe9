"""The published base models' sizing fields: the part of each Hub repo's ``config.json`` that decides the weights
(widths, depths, head counts, vocabulary, tying, Qwen3.5's Gated DeltaNet layout), and the lookup from a
profile's base model to its `Architecture`. Sources of the Qwen3.5 figures: docs/qwen3_5.md; the Qwen3-VL
figures are the repos' ``config.json``. The test kit's Hub-shaped folders (`edugraph_pipeline_tests/kit/hub_models`)
are built from these figures (one copy).
"""

from __future__ import annotations

import json
from pathlib import Path

from edugraph_pipeline.training.architecture import Architecture, ArchitectureError, from_config


def _qwen3_vl(hidden, intermediate, layers, heads, kv_heads, tied, depth, v_hidden, v_intermediate, deepstack):
    return {
        "model_type": "qwen3_vl",
        "tie_word_embeddings": tied,
        "text_config": {
            "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": 128, "vocab_size": 151936,
            "tie_word_embeddings": tied,
        },
        "vision_config": {
            "depth": depth, "hidden_size": v_hidden, "intermediate_size": v_intermediate, "num_heads": 16,
            "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3,
            "out_hidden_size": hidden, "num_position_embeddings": 2304, "deepstack_visual_indexes": deepstack,
        },
    }


def _qwen3_5(hidden, intermediate, layers, heads, value_heads, tied, depth, v_hidden, v_intermediate):
    return {
        "model_type": "qwen3_5",
        "tie_word_embeddings": tied,
        "text_config": {
            "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 248320,
            "tie_word_embeddings": tied, "full_attention_interval": 4, "linear_num_key_heads": 16,
            "linear_num_value_heads": value_heads, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
            "linear_conv_kernel_dim": 4,
        },
        "vision_config": {
            "depth": depth, "hidden_size": v_hidden, "intermediate_size": v_intermediate, "num_heads": 16,
            "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3,
            "out_hidden_size": hidden, "num_position_embeddings": 2304,
        },
    }


# The Hub configs' sizing fields (docs/qwen3_5.md gives the sources of the Qwen3.5 figures).
PUBLISHED_CONFIGS: dict[str, dict] = {
    "Qwen/Qwen3-VL-2B-Instruct": _qwen3_vl(2048, 6144, 28, 16, 8, True, 24, 1024, 4096, [5, 11, 17]),
    "Qwen/Qwen3-VL-4B-Instruct": _qwen3_vl(2560, 9728, 36, 32, 8, True, 24, 1024, 4096, [5, 11, 17]),
    "Qwen/Qwen3-VL-8B-Instruct": _qwen3_vl(4096, 12288, 36, 32, 8, False, 27, 1152, 4304, [8, 16, 24]),
    "Qwen/Qwen3.5-4B": _qwen3_5(2560, 9216, 32, 16, 32, True, 24, 1024, 4096),
    "Qwen/Qwen3.5-9B": _qwen3_5(4096, 12288, 32, 16, 32, False, 27, 1152, 4304),
    "Qwen/Qwen3.5-27B": _qwen3_5(5120, 17408, 64, 24, 48, False, 27, 1152, 4304),
}


def for_base_model(base_model: str | None) -> Architecture:
    """The architecture of a profile's base: a published Hub id, a local folder with a config.json, or None (the
    tiny model the pipeline builds)."""
    if base_model is None:
        from edugraph_pipeline.training.tiny_model.model import tiny_config

        return from_config(tiny_config().to_dict())
    if base_model in PUBLISHED_CONFIGS:
        return from_config(PUBLISHED_CONFIGS[base_model])
    path = Path(base_model) / "config.json"
    if path.is_file():
        try:
            return from_config(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"{path}: not JSON ({exc})") from exc
    raise ArchitectureError(
        f"base model {base_model!r}: neither a published config this module knows ({sorted(PUBLISHED_CONFIGS)}) "
        f"nor a local folder with a config.json"
    )
