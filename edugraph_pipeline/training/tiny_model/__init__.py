"""The `tiny` model profile's base, a tiny real Qwen3-VL built offline: the names its importers use.

Each part lives in its own module: `tokenizer` (the Qwen vocabulary and special tokens), `template` (the chat
template), `processor` (image/video processors, tokenizer and template), `model` (the seeded model folder),
`pictures` (generated captioned pictures) and `pretraining` (the brief full-parameter training on them).
"""

from edugraph_pipeline.training.tiny_model.model import (
    TinySpec,
    build_tiny_model,
    count_parameters,
    folder_size,
    tiny_config,
)
from edugraph_pipeline.training.tiny_model.pictures import generate_picture
from edugraph_pipeline.training.tiny_model.pretraining import (
    PretrainConfig,
    build_pretrained_tiny_model,
    pretrain_tiny_model,
)
from edugraph_pipeline.training.tiny_model.tokenizer import build_tokenizer

__all__ = [
    "PretrainConfig",
    "TinySpec",
    "build_pretrained_tiny_model",
    "build_tiny_model",
    "build_tokenizer",
    "count_parameters",
    "folder_size",
    "generate_picture",
    "pretrain_tiny_model",
    "tiny_config",
]
