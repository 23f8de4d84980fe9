"""Stage 1 and stage 2 on tiny data: answer-only loss mask, adapters, metrics (resuming after a SIGKILL:
test_killed_step.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edugraph_pipeline.training.data import IGNORE_INDEX

METRIC_KEYS = {
    "adapter_path", "base_model", "base_model_revision", "hyperparameters", "trainable_parameters", "steps",
    "wall_time_s", "samples_per_s", "tokens_per_s", "peak_memory_bytes", "device", "loss_history",
}


def _answer_span(input_ids: list[int], answer_ids: list[int]) -> range:
    """Where the answer tokens followed by <|im_end|> sit in the sequence (exactly once)."""
    target = answer_ids + [151645]
    hits = [i for i in range(len(input_ids) - len(target) + 1) if input_ids[i : i + len(target)] == target]
    assert len(hits) == 1, hits
    return range(hits[0], hits[0] + len(target))


def _assert_labels_are_answer(input_ids, labels, answer_ids):
    input_ids, labels = list(map(int, input_ids)), list(map(int, labels))
    span = _answer_span(input_ids, answer_ids)
    labelled = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    assert labelled, "nothing to learn"
    assert all(i in span for i in labelled), "a label outside the answer"
    assert labelled == list(span), "the answer (with its <|im_end|>) is not fully in the loss"
    assert all(labels[i] == input_ids[i] for i in labelled)


@pytest.fixture(scope="module")
def worksheet_rows(tiny_datasets):
    from datasets import load_from_disk

    return load_from_disk(str(tiny_datasets["worksheets"]))["train"]


@pytest.fixture(scope="module")
def processor(tiny_base):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(str(tiny_base))


def test_cached_features_mask_everything_but_the_answer(processor, worksheet_rows):
    from edugraph_pipeline.training.data import FeatureCollator, encode_worksheets

    features = encode_worksheets(processor, worksheet_rows, max_samples=4)
    batch = FeatureCollator(processor.tokenizer.pad_token_id)(features)
    assert {"input_ids", "attention_mask", "labels", "mm_token_type_ids", "pixel_values", "image_grid_thw"} <= set(batch)
    for i in range(4):
        answer_ids = processor.tokenizer(worksheet_rows[i]["labels"]).input_ids
        _assert_labels_are_answer(batch["input_ids"][i], batch["labels"][i], answer_ids)
        image_positions = batch["input_ids"][i] == processor.image_token_id
        assert (batch["mm_token_type_ids"][i][image_positions] == 1).all()
        assert (batch["labels"][i][image_positions] == IGNORE_INDEX).all()


def test_trl_vision_collator_masks_the_same_way(processor, worksheet_rows):
    """The upstream path (trl's collator, processor per batch) selects exactly the same label tokens."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from edugraph_pipeline.training.data import worksheet_rows as to_rows

    rows = to_rows(worksheet_rows, max_samples=2)
    collator = DataCollatorForVisionLanguageModeling(processor=processor, assistant_only_loss=True)
    batch = collator([dict(rows[i]) for i in range(2)])
    assert "mm_token_type_ids" in batch
    for i in range(2):
        answer_ids = processor.tokenizer(worksheet_rows[i]["labels"]).input_ids
        _assert_labels_are_answer(batch["input_ids"][i], batch["labels"][i], answer_ids)


def test_knowledge_chat_masks_everything_but_the_answer(processor, tiny_datasets):
    from datasets import load_from_disk

    row = load_from_disk(str(tiny_datasets["knowledge"]))[0]
    out = processor.tokenizer.apply_chat_template(
        row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    labels = [t if m else IGNORE_INDEX for t, m in zip(out["input_ids"], out["assistant_masks"])]
    _assert_labels_are_answer(out["input_ids"], labels, processor.tokenizer(row["output"]).input_ids)


def test_answer_only_loss_equals_the_models_loss(processor, worksheet_rows, tiny_base):
    import torch
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.training.data import FeatureCollator, encode_worksheets, masked_lm_loss

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_base))
    batch = FeatureCollator(processor.tokenizer.pad_token_id)(encode_worksheets(processor, worksheet_rows, 3))
    with torch.no_grad():
        ours = masked_lm_loss(model, batch)
        theirs = model(**batch).loss
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_stage1_then_stage2(stage_cfg):
    from edugraph_pipeline.training.sft import train_knowledge_adapter, train_worksheet_adapter

    first = train_knowledge_adapter(stage_cfg("knowledge"))
    assert METRIC_KEYS <= set(first)
    adapter = Path(first["adapter_path"])
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "adapter_config.json").exists()
    assert first["steps"] == 2 and len(first["loss_history"]) == 2
    assert first["trainable_parameters"] > 0 and first["base_model_revision"].startswith("sha256:")
    stage1_targets = json.loads((adapter / "adapter_config.json").read_text())["target_modules"]
    assert "language_model" in str(stage1_targets)

    second = train_worksheet_adapter(stage_cfg("worksheet", knowledge_adapter=first["adapter_path"]))
    assert METRIC_KEYS <= set(second)
    out = Path(second["adapter_path"])
    assert (out / "adapter_model.safetensors").exists()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == first["base_model"]
    assert (out.parent / "knowledge_adapter" / "adapter_model.safetensors").exists()
    assert second["steps"] == 2 and second["tokens_per_s"] > 0 and second["samples_per_s"] > 0
    assert second["image_tokens_per_image_max"] <= stage_cfg("worksheet").max_pixels // (32 * 32)
    assert json.loads((out.parent / "metrics.json").read_text())["steps"] == 2

    # base + knowledge adapter + worksheet adapter merge into one standalone model (what merged_model does)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.training.merge import merge_into_folder, trained_artifact

    base, adapters = trained_artifact(out.parent)
    merged_dir = out.parent.parent / "merged"
    merge_into_folder(base, adapters, adapters[-1], merged_dir)
    merged = AutoModelForImageTextToText.from_pretrained(str(merged_dir))
    reference = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(second["trained_on"]), str(out)
    ).merge_and_unload()
    for name, tensor in reference.state_dict().items():
        assert torch.allclose(merged.state_dict()[name], tensor, atol=1e-5), name


def test_stage2_upstream_collator_path_trains(stage_cfg):
    from edugraph_pipeline.training.sft import train_worksheet_adapter

    metrics = train_worksheet_adapter(
        stage_cfg("worksheet", max_steps=1, cache_features=False, loss_on_labels_only=False, batch_size=1)
    )
    assert metrics["steps"] == 1 and metrics["feature_cache"] is False

