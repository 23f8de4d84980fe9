"""The tiny model's processor: Qwen3-VL's image and video processors with explicit settings, the tokenizer and the
chat template, under a bounded pixel budget."""

from __future__ import annotations

from edugraph_pipeline.training.tiny_model.template import CHAT_TEMPLATE
from edugraph_pipeline.training.tiny_model.tokenizer import build_tokenizer


def build_processor(min_pixels: int = 32 * 32 * 4, max_pixels: int = 32 * 32 * 64, tokenizer=None):
    """Qwen3-VL's processor from explicit settings (patch 16, merge 2, mean/std 0.5) and a bounded pixel budget."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32},
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer if tokenizer is not None else build_tokenizer(),
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
