"""Answer-only loss on the Hub's own Qwen3-VL chat template (no ``{% generation %}`` markers): issue 10."""

from __future__ import annotations

import pytest

from edugraph_pipeline.labels import format_answer
from edugraph_pipeline.prompts import classification_messages
from edugraph_pipeline.training.chat_template import ChatTemplateError, training_chat_template
from edugraph_pipeline.training.data import IGNORE_INDEX, encode_chat
from edugraph_pipeline_tests.kit.hub_models import IMAGE_TOKEN_ID, hub_chat_template, write_processor_files

ANSWER = format_answer({"Area": ["IntegerAddition"], "Scope": ["NumbersSmaller10"], "Ability": ["ProcedureExecution"]})
IM_END = 151645


@pytest.fixture(scope="module")
def hub_processor(tmp_path_factory):
    """The processor files of a Hub Qwen3-VL folder (no weights needed to tokenize)."""
    from transformers import AutoProcessor

    folder = tmp_path_factory.mktemp("hub-processor")
    write_processor_files(folder)
    processor = AutoProcessor.from_pretrained(folder)
    processor.image_processor.size = {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 64}
    return processor


@pytest.fixture(scope="module")
def sheet():
    import random

    from edugraph_pipeline_tests.kit.synthetic import draw_worksheet

    return draw_worksheet("add10", random.Random(0))


def test_the_fixture_carries_the_hub_template_without_markers(hub_processor):
    from trl.chat_template_utils import has_generation_markers

    assert hub_processor.chat_template == hub_chat_template()
    assert not has_generation_markers(hub_processor.chat_template)


def test_the_hub_template_alone_has_no_answer_to_learn(hub_processor, sheet):
    """What the issue hit at the first worksheet row."""
    with pytest.raises(ValueError, match="no assistant answer to learn"):
        encode_chat(hub_processor, classification_messages(ANSWER), [sheet])


def test_exactly_the_answer_and_its_end_token_carry_loss(hub_processor, sheet):
    template = training_chat_template(hub_processor, "hub fixture")
    feature = encode_chat(hub_processor, classification_messages(ANSWER), [sheet], chat_template=template)
    ids, labels = feature["input_ids"], feature["labels"]
    learned = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    expected = hub_processor.tokenizer(ANSWER, add_special_tokens=False)["input_ids"] + [IM_END]
    assert labels[learned].tolist() == expected
    assert learned == list(range(learned[0], learned[0] + len(expected)))  # one contiguous span...
    assert hub_processor.tokenizer.decode(ids[: learned[0]]).endswith("<|im_start|>assistant\n")  # ...after the prompt
    assert int((ids == IMAGE_TOKEN_ID).sum()) == int(feature["image_grid_thw"].prod() // 4) > 0
    assert not bool((labels == IMAGE_TOKEN_ID).any())
    # The processor itself still renders the Hub's inference template: only training tokenization changed.
    assert hub_processor.chat_template == hub_chat_template()


def test_cached_pixels_are_bf16(hub_processor, sheet):
    import torch

    template = training_chat_template(hub_processor, "hub fixture")
    feature = encode_chat(hub_processor, classification_messages(ANSWER), [sheet], chat_template=template)
    exact = hub_processor.image_processor(images=[sheet], return_tensors="pt")["pixel_values"]
    assert feature["pixel_values"].dtype == torch.bfloat16
    assert feature["pixel_values"].shape == exact.shape
    # bf16 keeps 8 significant bits: coarser than nothing, finer than the 8-bit image's 2/255 step near 1.
    assert float((feature["pixel_values"].float() - exact).abs().max()) <= 2 / 255


def test_an_unknown_template_fails_before_training_saying_what_is_missing(hub_processor):
    import copy

    other = copy.copy(hub_processor)
    other.chat_template = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
    with pytest.raises(ChatTemplateError) as failure:
        training_chat_template(other, "some/base")
    message = str(failure.value)
    assert message.startswith("some/base:") and "{% generation %}" in message and "trl" in message
