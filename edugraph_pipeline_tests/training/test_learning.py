"""Slow: the tiny profile actually learns to label generated worksheets (held-out exact match > majority)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_tiny_profile_beats_the_majority_baseline(tmp_path):
    from datasets import load_from_disk
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.training.config import profile, stage_config
    from edugraph_pipeline.training.quickeval import exact_match
    from edugraph_pipeline.training.sft import load_processor, train_worksheet_adapter
    from edugraph_pipeline.training.synthetic import make_worksheet_dataset
    from edugraph_pipeline.training.tiny_model import PretrainConfig, build_tiny_model, pretrain_tiny_model

    base = tmp_path / "base"
    pretrain_tiny_model(build_tiny_model(tmp_path / "raw"), base, PretrainConfig(steps=200, n_images=300))
    make_worksheet_dataset(tmp_path / "ws", n_train=300, n_validation=48, seed=7)
    cfg = stage_config(
        "worksheet", base_model=str(base), dataset_path=str(tmp_path / "ws"), output_dir=str(tmp_path / "out"),
        prof=profile("tiny"), mode="train",
    ).with_(max_steps=200, save_steps=10_000)
    metrics = train_worksheet_adapter(cfg)
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(str(base)), metrics["adapter_path"])
    result = exact_match(model, load_processor(cfg), load_from_disk(str(tmp_path / "ws"))["validation"])
    print(result)
    assert result["exact_match"] >= result["majority_baseline"] + 0.1
