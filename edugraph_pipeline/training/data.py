"""Dataset -> chat conversion, pre-encoded features, the padding collator and the answer-only loss.

Two ways to feed stage 2:

* the upstream way: rows ``{"image", "messages"}`` to trl's built-in vision collator, which runs the processor on
  the raw images for every batch (`worksheet_rows`);
* the cached way (default): every example is encoded once (`encode_chat`: token ids, answer-only labels, pixel
  values, grid sizes, ``mm_token_type_ids``) and `FeatureCollator` only pads and concatenates. Cached pixel values
  are bf16 (half of fp32's ~19 MB per 768-token image; the vision tower casts them to its own dtype anyway).
"""

from __future__ import annotations

from collections.abc import Sequence

from edugraph_pipeline.prompts import classification_messages

IGNORE_INDEX = -100
PIXEL_CACHE_DTYPE = "bfloat16"


def knowledge_rows(dataset, max_samples: int | None = None):
    """Stage 1: keep the conversational ``messages`` column only (trl masks everything but the answers)."""
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    drop = [c for c in dataset.column_names if c != "messages"]
    return dataset.remove_columns(drop)


def worksheet_messages(answer: str | None, image=None) -> list[dict]:
    messages = classification_messages(answer)
    if image is not None:
        messages[1]["content"][0]["image"] = image
    return messages


def worksheet_rows(dataset, max_samples: int | None = None):
    """Stage 2, upstream way: ``{"image": PIL, "messages": [system, user(image + prompt), assistant(answer)]}``."""
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))

    def convert(row):
        return {"messages": classification_messages(row["labels"])}

    keep = {"image", "labels"}
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in keep])
    return dataset.map(convert, remove_columns=["labels"])


def encode_chat(
    processor, messages: list[dict], images: Sequence | None = None, chat_template: str | None = None
) -> dict:
    """Tokenise one chat (images filled into its image blocks, in order) into 1-D tensors with answer-only labels.

    `chat_template` (default: the processor's) must mark the answers with ``{% generation %}``; labels are the
    marked tokens up to the end-of-turn token (what a template writes after it, a newline, is never generated).
    """
    import torch

    images = list(images or [])
    filled = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            blocks = []
            for block in content:
                if block.get("type") == "image" and "image" not in block:
                    block = {**block, "image": images.pop(0)}
                blocks.append(block)
            message = {**message, "content": blocks}
        filled.append(message)
    if images:
        raise ValueError(f"{len(images)} image(s) left over: the chat has fewer image blocks")
    out = processor.apply_chat_template(
        filled,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        return_assistant_tokens_mask=True,
        chat_template=chat_template,
    )
    input_ids = out["input_ids"][0]
    mask = out["assistant_masks"][0].bool() if "assistant_masks" in out else None
    if mask is None or not mask.any():
        raise ValueError("the chat has no assistant answer to learn")
    ends = ((input_ids == processor.tokenizer.eos_token_id) & mask).nonzero()
    if len(ends):
        mask[int(ends[-1]) + 1 :] = False
    labels = input_ids.clone()
    labels[~mask] = IGNORE_INDEX
    feature = {"input_ids": input_ids, "labels": labels}
    if "mm_token_type_ids" in out:
        feature["mm_token_type_ids"] = out["mm_token_type_ids"][0]
    if "pixel_values" in out:
        feature["pixel_values"] = out["pixel_values"].to(getattr(torch, PIXEL_CACHE_DTYPE))
        feature["image_grid_thw"] = out["image_grid_thw"]
    return feature


def encode_worksheets(
    processor, dataset, max_samples: int | None = None, chat_template: str | None = None
) -> list[dict]:
    """Every worksheet row encoded once (the cached stage-2 path)."""
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    features = []
    for i in range(n):
        row = dataset[i]
        image = row["image"].convert("RGB")
        features.append(encode_chat(processor, classification_messages(row["labels"]), [image], chat_template))
    return features


class FeatureDataset:
    """A map-style dataset over pre-encoded features (what `Trainer` needs: len, getitem)."""

    def __init__(self, features: list[dict]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        if index >= len(self.features):
            raise IndexError(index)
        return self.features[index]


class FeatureCollator:
    """Right-pads token tensors and concatenates pixel values / grids; keeps ``mm_token_type_ids``."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        import torch

        length = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = len(features)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((batch, length), dtype=torch.long)
        has_mm = "mm_token_type_ids" in features[0]
        mm = torch.zeros((batch, length), dtype=torch.long) if has_mm else None
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[i, :n] = f["input_ids"]
            labels[i, :n] = f["labels"]
            attention_mask[i, :n] = 1
            if has_mm:
                mm[i, :n] = f["mm_token_type_ids"]
        out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if has_mm:
            out["mm_token_type_ids"] = mm
        pixels = [f["pixel_values"] for f in features if "pixel_values" in f]
        if pixels:
            out["pixel_values"] = torch.cat(pixels)  # the vision tower casts to its dtype
            out["image_grid_thw"] = torch.cat([f["image_grid_thw"] for f in features if "image_grid_thw" in f])
        return out


def masked_lm_loss(model, inputs: dict, return_outputs: bool = False, num_items_in_batch=None):
    """Causal-LM loss computed only where labels are set: the LM head runs on the answer positions alone.

    Same value as the model's own loss (mean over label tokens), without the full ``seq x vocab`` logits; the
    position-``p`` logits are kept where ``labels[p + 1]`` is set.
    """
    import torch.nn.functional as F

    inputs = dict(inputs)
    labels = inputs.pop("labels")
    targets_mask = labels[:, 1:] != IGNORE_INDEX
    keep = targets_mask.new_zeros(labels.shape)
    keep[:, :-1] = targets_mask
    outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    targets = labels[:, 1:][targets_mask]
    if num_items_in_batch is None:
        loss = F.cross_entropy(logits, targets)
    else:  # Trainer's gradient-accumulation-correct normalisation (tokens of all micro-batches of a step)
        loss = F.cross_entropy(logits, targets, reduction="sum") / num_items_in_batch
    return (loss, outputs) if return_outputs else loss
