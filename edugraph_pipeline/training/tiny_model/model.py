"""The tiny model itself: a seeded, real `Qwen3VLForConditionalGeneration` (2 text layers, hidden 128; 2 vision
blocks, hidden 64) with the real Qwen vocabulary, written with its processor to a folder that loads offline with
``AutoModelForImageTextToText.from_pretrained`` and ``AutoProcessor.from_pretrained``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from edugraph_pipeline.training.tiny_model.processor import build_processor
from edugraph_pipeline.training.tiny_model.tokenizer import ENDOFTEXT_ID, IM_END_ID, VOCAB_SIZE

SPEC_FILE = "tiny_spec.json"  # the `TinySpec` a folder was built from


@dataclass(frozen=True)
class TinySpec:
    """The tiny model's architecture; every field ends up in the saved config."""

    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_head_dim: int = 32
    text_intermediate: int = 384
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_heads: int = 2
    vision_intermediate: int = 128
    patch_size: int = 16
    merge_size: int = 2
    num_position_embeddings: int = 1024
    text_init: float = 0.1
    vision_init: float = 0.05
    tie_word_embeddings: bool = True
    seed: int = 0
    min_pixels: int = 32 * 32 * 4
    max_pixels: int = 32 * 32 * 64



def tiny_config(spec: TinySpec = TinySpec()):
    from transformers import Qwen3VLConfig

    half = spec.text_head_dim // 2
    t = half // 3
    mrope_section = [half - 2 * t, t, t]  # sums to head_dim / 2, like Qwen3-VL's [24, 20, 20]
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=VOCAB_SIZE,
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_intermediate,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            num_key_value_heads=spec.text_kv_heads,
            head_dim=spec.text_head_dim,
            max_position_embeddings=8192,
            initializer_range=spec.text_init,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": mrope_section,
                "mrope_interleaved": True,
            },
            bos_token_id=ENDOFTEXT_ID,
            eos_token_id=IM_END_ID,
            pad_token_id=ENDOFTEXT_ID,
            tie_word_embeddings=spec.tie_word_embeddings,
        ),
        vision_config=dict(
            depth=spec.vision_depth,
            hidden_size=spec.vision_hidden,
            intermediate_size=spec.vision_intermediate,
            num_heads=spec.vision_heads,
            patch_size=spec.patch_size,
            spatial_merge_size=spec.merge_size,
            temporal_patch_size=2,
            out_hidden_size=spec.text_hidden,
            num_position_embeddings=spec.num_position_embeddings,
            deepstack_visual_indexes=[spec.vision_depth - 1],
            initializer_range=spec.vision_init,
        ),
        tie_word_embeddings=spec.tie_word_embeddings,
    )
    return config


def build_tiny_model(folder: str | Path, spec: TinySpec = TinySpec(), processor=None) -> Path:
    """Write the seeded tiny Qwen3-VL (safetensors) and its processor to `folder`; the same spec gives the same bytes."""
    import torch
    from transformers import GenerationConfig, Qwen3VLForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    model = Qwen3VLForConditionalGeneration(tiny_config(spec))
    model.generation_config = GenerationConfig(
        bos_token_id=ENDOFTEXT_ID, eos_token_id=[IM_END_ID, ENDOFTEXT_ID], pad_token_id=ENDOFTEXT_ID,
        do_sample=False,
    )
    model.save_pretrained(folder, safe_serialization=True)
    processor = processor or build_processor(spec.min_pixels, spec.max_pixels)
    processor.save_pretrained(folder)
    (folder / SPEC_FILE).write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")
    return folder


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    embed = model.get_input_embeddings().weight.numel()
    return {"total": total, "embedding": embed, "non_embedding": total - embed}


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())

