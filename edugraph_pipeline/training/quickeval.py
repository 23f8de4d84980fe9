"""Held-out exact match of a (PEFT-wrapped) model on a worksheet split: greedy answers vs the ``labels`` column.

A quick learning check for training runs (tiny profile, bench); the evaluation asset proper lives elsewhere.
"""

from __future__ import annotations

from collections import Counter

from edugraph_pipeline.prompts import classification_messages


def generate_answer(model, processor, image, max_new_tokens: int = 48) -> str:
    import torch

    messages = classification_messages()
    messages[1]["content"][0]["image"] = image.convert("RGB")
    inputs = processor.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    ).to(model.device)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def exact_match(model, processor, rows, limit: int | None = None) -> dict:
    """``{"exact_match", "n", "majority_baseline"}``; majority = always answering the most frequent label."""
    was_training = model.training
    model.eval()
    n = len(rows) if limit is None else min(limit, len(rows))
    hits = 0
    truths = []
    for i in range(n):
        row = rows[i]
        truths.append(row["labels"])
        hits += generate_answer(model, processor, row["image"]) == row["labels"]
    if was_training:
        model.train()
    majority = Counter(truths).most_common(1)[0][1] / n if n else 0.0
    return {"exact_match": hits / n if n else 0.0, "n": n, "majority_baseline": majority}
