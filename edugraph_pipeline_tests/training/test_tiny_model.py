"""The tiny Qwen3-VL: real classes, real Qwen vocabulary, offline round trip, chat template."""

from __future__ import annotations

import json
import random

import pytest

from edugraph_pipeline.prompts import SYSTEM_PROMPT, USER_PROMPT, classification_messages
from edugraph_pipeline.training.tiny_model.tokenizer import (
    SPECIAL_START_ID,
    SPECIAL_TOKENS,
    VOCAB_SIZE,
    build_tokenizer,
)

# Ids of the real Qwen2.5-VL / Qwen3-VL tokenizer.
EXPECTED_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
    "<tool_call>": 151657,
    "<think>": 151667,
    "</think>": 151668,
}


@pytest.fixture(scope="module")
def processor(tiny_base):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(tiny_base))


def test_tokenizer_matches_qwen2_ids():
    tokenizer = build_tokenizer()
    assert tokenizer("Hello").input_ids == [9707]
    assert tokenizer(" world").input_ids == [1879]
    for token, expected in EXPECTED_IDS.items():
        assert tokenizer.convert_tokens_to_ids(token) == expected, token
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(
        range(SPECIAL_START_ID, SPECIAL_START_ID + len(SPECIAL_TOKENS))
    )
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    # special tokens in text are single tokens, and decode back
    ids = tokenizer("<|im_start|>user\nHi<|im_end|>").input_ids
    assert ids[0] == 151644 and ids[-1] == 151645
    assert tokenizer.decode(ids) == "<|im_start|>user\nHi<|im_end|>"


def test_tiny_model_round_trips_offline(tiny_base, processor):
    import torch
    from transformers import AutoModelForImageTextToText, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_base))
    assert isinstance(model, Qwen3VLForConditionalGeneration)
    assert isinstance(processor, Qwen3VLProcessor)
    assert model.get_input_embeddings().weight.shape[0] == VOCAB_SIZE
    assert model.config.image_token_id == processor.image_token_id == 151655
    assert processor.tokenizer("Hello").input_ids == [9707]
    assert (tiny_base / "model.safetensors").exists()
    # it runs on an image and generates
    from edugraph_pipeline_tests.kit.synthetic import draw_worksheet

    messages = classification_messages()
    messages[1]["content"][0]["image"] = draw_worksheet("add10", random.Random(0))
    inputs = processor.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )
    image_tokens = int((inputs["input_ids"] == 151655).sum())
    assert 0 < image_tokens <= processor.image_processor.size["longest_edge"] // (32 * 32)
    prompt_length = inputs["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
        generated = out[0, prompt_length:].tolist()
        assert len(generated) == 3 or (0 < len(generated) < 3 and generated[-1] in END_OF_TEXT), generated
        # Greedy by hand: each generated token is the most likely next token of a full forward pass over the
        # prompt and the tokens before it (up to rounding), so the saved generation config decodes greedily.
        for index, token in enumerate(generated):
            logits = model(**_extended(inputs, generated[:index])).logits[0, -1]
            assert logits[token] >= logits.max() - 1e-4, (index, token, int(logits.argmax()))
        # The model sees the picture: a blank one of the same size, the same prompt, other next-token logits.
        blank = messages[1]["content"][0]["image"].copy()
        blank.paste("white", (0, 0, *blank.size))
        messages[1]["content"][0]["image"] = blank
        blank_inputs = processor.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        assert torch.equal(blank_inputs["input_ids"], inputs["input_ids"])  # the text is the same, token for token
        difference = model(**blank_inputs).logits[0, -1] - model(**inputs).logits[0, -1]
    assert difference.abs().max() > 1e-3


END_OF_TEXT = (151645, 151643)  # <|im_end|>, <|endoftext|>


def _extended(inputs: dict, tokens: list[int]) -> dict:
    """The processor's inputs with `tokens` appended (text tokens: type 0, attended)."""
    import torch

    extra = torch.tensor([tokens], dtype=inputs["input_ids"].dtype)
    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    out["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(extra)], dim=1)
    if "mm_token_type_ids" in inputs:
        out["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
    return out


def test_build_is_deterministic(raw_tiny_model, tmp_path):
    from edugraph_pipeline.training.sft import model_revision
    from edugraph_pipeline.training.tiny_model import build_tiny_model

    again = build_tiny_model(tmp_path / "again")
    assert model_revision(str(again)) == model_revision(str(raw_tiny_model))


def test_pretraining_ran_and_changed_weights(raw_tiny_model, tiny_base):
    from edugraph_pipeline.training.sft import model_revision

    record = json.loads((tiny_base / "pretraining.json").read_text())
    assert record["steps"] == 3 and len(record["loss_history"]) == 3
    assert all(loss == loss and loss < 20 for _, loss in record["loss_history"])
    assert model_revision(str(tiny_base)) != model_revision(str(raw_tiny_model))


def test_chat_template_matches_qwen3_vl_layout(processor):
    text = processor.apply_chat_template(classification_messages('{"Error": "UnsupportedMaterial"}'), tokenize=False)
    assert text == (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{USER_PROMPT}<|im_end|>\n"
        '<|im_start|>assistant\n{"Error": "UnsupportedMaterial"}<|im_end|>\n'
    )
    prompt = processor.apply_chat_template(classification_messages(), tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    plain = processor.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert plain == "<|im_start|>user\nHi<|im_end|>\n"


def test_generated_pictures_are_described():
    from edugraph_pipeline.training.tiny_model import generate_picture

    rng = random.Random(3)
    seen = [generate_picture(rng) for _ in range(30)]
    assert all(image.size == (224, 224) and caption for image, caption in seen)
    assert len({caption for _, caption in seen}) > 10


def test_stage_two_trains_the_answer_tokens_rows_of_the_tied_head(tiny_base):
    """The tiny base never saw the concept names: stage 2 trains their embedding rows, and through the tie the LM
    head's, beside the LoRA (`sft.ANSWER_TOKEN_PROFILES`)."""
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.labels import format_answer
    from edugraph_pipeline.training.profiles import profile, stage_config
    from edugraph_pipeline.training.sft import answer_token_ids, lora_config

    tokenizer = build_tokenizer()
    answer = format_answer({"Area": ["IntegerAddition"], "Scope": ["NumbersSmaller10"], "Ability": []})
    ids = answer_token_ids(tokenizer, [answer, answer])
    assert ids == sorted(set(tokenizer(answer, add_special_tokens=False).input_ids) | {151645})
    cfg = stage_config("worksheet", base_model=str(tiny_base), dataset_path="unused", output_dir="unused",
                       prof=profile("tiny"), mode="train")
    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(str(tiny_base)), lora_config(cfg, ids))
    wrapped = {type(model.base_model.model.lm_head).__name__,
               type(model.base_model.model.model.language_model.embed_tokens).__name__}
    assert wrapped == {"TrainableTokensWrapper"}
    trainable, _ = model.get_nb_trainable_parameters()
    plain = get_peft_model(AutoModelForImageTextToText.from_pretrained(str(tiny_base)), lora_config(cfg))
    assert trainable - plain.get_nb_trainable_parameters()[0] == len(ids) * 128  # rows x text hidden (one copy: tied)
