import json

import pytest
import torch


@pytest.fixture(scope="module")
def base_and_adapters(tmp_path_factory):
    """A tiny Qwen3-VL and two LoRA adapters with non-zero weights (a knowledge and a worksheet stage)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.training.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("merge")
    base = build_tiny_model(root / "base")
    adapters = []
    for index, targets in enumerate((["q_proj", "v_proj"], ["o_proj", "down_proj"])):
        torch.manual_seed(index)
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
        # init_lora_weights=False: random A and B, so each adapter really changes the output.
        config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
        peft_model = get_peft_model(model, config)
        peft_model.save_pretrained(root / f"adapter{index}")
        adapters.append(str(root / f"adapter{index}"))
    return str(base), adapters, root


def _logits(model, processor):
    from PIL import Image

    from edugraph_pipeline.prompts import classification_messages

    image = Image.new("RGB", (96, 64), (240, 240, 230))
    text = processor.apply_chat_template(classification_messages(), add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def test_merged_folder_equals_adapters_on_base(base_and_adapters):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from edugraph_pipeline.storage.layout import PROMPTS_FILE
    from edugraph_pipeline.training.merge import load_with_adapters, merge_into_folder

    base, adapters, root = base_and_adapters
    processor = AutoProcessor.from_pretrained(base)
    unmerged = load_with_adapters(base, adapters, merge=False)
    info = merge_into_folder(base, adapters, base, root / "merged")
    merged = AutoModelForImageTextToText.from_pretrained(root / "merged", local_files_only=True)
    plain = AutoModelForImageTextToText.from_pretrained(base, local_files_only=True)

    expected, got = _logits(unmerged, processor), _logits(merged.eval(), AutoProcessor.from_pretrained(root / "merged"))
    assert torch.allclose(expected, got, atol=1e-4), (expected - got).abs().max()
    assert not torch.allclose(_logits(plain.eval(), processor), got, atol=1e-3), "adapters changed nothing"
    assert list((root / "merged").glob("*.safetensors")) and not list((root / "merged").glob("adapter_*"))
    assert json.loads((root / "merged" / PROMPTS_FILE).read_text())["system"].startswith("You are")
    assert info["parameters"] == sum(p.numel() for p in merged.parameters())
