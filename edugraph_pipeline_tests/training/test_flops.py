"""The FLOP count behind MFU/HFU: a hand count for one small shape, and torch's own FLOP counter on a real LoRA
forward + backward pass of the tiny model."""

from __future__ import annotations

import pytest

from edugraph_pipeline.training.architecture import from_config
from edugraph_pipeline.training.flops import SampleShape, forward_flops, sample_flops
from edugraph_pipeline.training.lora_targets import LANGUAGE_MODEL_LINEAR

# Text: hidden 8, one layer, 2 query heads + 1 key/value head of 4, MLP 12, vocabulary 10. Vision: one block of
# width 4 (MLP 6), 2x2-pixel patches over 2 frames of 3 channels, 2x2 merging into width 8, one deepstack merger.
SMALL = {
    "model_type": "qwen3_vl",
    "tie_word_embeddings": True,
    "text_config": {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                    "head_dim": 4, "intermediate_size": 12, "vocab_size": 10},
    "vision_config": {"depth": 1, "hidden_size": 4, "intermediate_size": 6, "num_heads": 1, "patch_size": 2,
                      "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3, "out_hidden_size": 8,
                      "num_position_embeddings": 4, "deepstack_visual_indexes": [0]},
}
# 5 positions, the head on 2 of them, one image of 8 patches (2 merged tokens), LoRA rank 2.
SHAPE = SampleShape(sequence=5, logit_positions=2, images=1, patches_per_image=8)
R = 2

# Forward, by hand (a multiply-add = 2 FLOPs).
TEXT_LINEAR = 2 * (8 * 8 + 8 * 4 + 8 * 4 + 8 * 8 + 3 * 8 * 12) * 5  # q, k, v, o, gate/up/down; 5 tokens = 4800
TEXT_ATTENTION = (1 + 2 + 3 + 4 + 5) * (2 * 8 + 2 * 8)  # causal pairs x (QK^T + AV over 8 query dims) = 480
LM_HEAD = 2 * 8 * 10 * 2  # = 320
PATCH_EMBED = 2 * (3 * 2 * 2 * 2) * 4 * 8  # 24 values per patch -> width 4, 8 patches = 1536
VISION_LINEAR = 2 * (4 * 12 + 4 * 4 + 4 * 6 + 6 * 4) * 8  # qkv, proj, fc1, fc2 per patch = 1792
VISION_ATTENTION = 8 * 8 * (2 * 4 + 2 * 4)  # every patch pair of the image, both matmuls = 1024
MERGER = 2 * (16 * 16 + 16 * 8) * 2 * 2  # fc1 16->16, fc2 16->8, 2 merged tokens, 2 mergers = 3072
LORA_TEXT = 2 * R * ((8 + 8) + (8 + 4) + (8 + 4) + (8 + 8) + 3 * (8 + 12)) * 5  # = 2320
LORA_VISION = 2 * R * ((4 + 12) + (4 + 4) + (4 + 6) + (6 + 4)) * 8  # = 1408
LORA_MERGER = 2 * R * ((16 + 16) + (16 + 8)) * 2 * 2  # = 896


def test_forward_flops_by_hand():
    parts = forward_flops(from_config(SMALL), SHAPE, "all-linear", R)
    assert parts == {
        "text_linear": TEXT_LINEAR, "text_attention": TEXT_ATTENTION, "text_linear_attention": 0, "lm_head": LM_HEAD,
        "vision_patch_embed": PATCH_EMBED, "vision_linear": VISION_LINEAR, "vision_attention": VISION_ATTENTION,
        "merger": MERGER, "lora": LORA_TEXT + LORA_VISION + LORA_MERGER,
    }
    assert (TEXT_LINEAR, TEXT_ATTENTION, MERGER, LORA_TEXT) == (4800, 480, 3072, 2320)


def test_training_flops_by_hand_all_linear():
    """Adapters everywhere: gradients flow through the vision tower; its first block needs no input gradient."""
    lora = LORA_TEXT + LORA_VISION + LORA_MERGER
    first_block_inputs = 2 * 4 * 12 * 8 + 2 * R * 4 * 8  # qkv's input gradient, frozen and lora_A = 896
    model = (2 * (TEXT_LINEAR + LM_HEAD + VISION_LINEAR + MERGER) + 3 * (TEXT_ATTENTION + VISION_ATTENTION)
             + PATCH_EMBED + 3 * lora - first_block_inputs)
    counted = sample_flops(from_config(SMALL), SHAPE, "all-linear", R, gradient_checkpointing=False)
    assert counted.model == model == 38992
    assert counted.hardware == model  # nothing recomputed
    recomputed = TEXT_LINEAR + TEXT_ATTENTION + VISION_LINEAR + VISION_ATTENTION + LORA_TEXT + LORA_VISION
    checkpointed = sample_flops(from_config(SMALL), SHAPE, "all-linear", R, gradient_checkpointing=True)
    assert checkpointed.model == model
    assert checkpointed.hardware == model + recomputed == 50816


def test_training_flops_by_hand_language_only():
    """Adapters in the decoder only: the vision tower runs forward only, the first layer needs no input gradient."""
    first_layer_inputs = 2 * 8 * (8 + 4 + 4) * 5 + 3 * 2 * R * 8 * 5  # q/k/v, frozen and lora_A = 1760
    model = (2 * (TEXT_LINEAR + LM_HEAD) + 3 * TEXT_ATTENTION + PATCH_EMBED + VISION_LINEAR + VISION_ATTENTION
             + MERGER + 3 * LORA_TEXT - first_layer_inputs)
    counted = sample_flops(from_config(SMALL), SHAPE, LANGUAGE_MODEL_LINEAR, R, gradient_checkpointing=True)
    assert counted.model == model == 24304
    # recomputed: the decoder layer and its adapters; the first layer's input gradients come back (transformers
    # makes the embeddings require gradients under checkpointing)
    assert counted.hardware == model + TEXT_LINEAR + TEXT_ATTENTION + LORA_TEXT + first_layer_inputs == 33664


def test_gated_delta_net_layers_by_hand():
    config = {
        "model_type": "qwen3_5",
        "tie_word_embeddings": True,
        "text_config": {"hidden_size": 8, "num_hidden_layers": 4, "num_attention_heads": 2, "num_key_value_heads": 1,
                        "head_dim": 4, "intermediate_size": 12, "vocab_size": 10, "linear_num_key_heads": 1,
                        "linear_num_value_heads": 2, "linear_key_head_dim": 4, "linear_value_head_dim": 4,
                        "linear_conv_kernel_dim": 3},
        "vision_config": dict(SMALL["vision_config"]),
    }
    parts = forward_flops(from_config(config), SampleShape(sequence=5, logit_positions=2), "all-linear", R)
    conv = 2 * 3 * (4 + 4 + 8)  # depthwise kernel 3 over q, k (1 head of 4) and v (2 heads of 4)
    delta = 6 * 4 * 4 * 2  # three key x value state products per value head
    assert parts["text_linear_attention"] == 3 * (conv + delta) * 5  # layers 0-2 are Gated DeltaNet
    delta_layer = 8 * 16 + 8 * 8 + 8 * 2 + 8 * 2 + 8 * 8  # in_proj_qkv, z, b, a, out_proj
    gated_full = 8 * 16 + 8 * 4 + 8 * 4 + 8 * 8  # q_proj doubled for the output gate
    assert parts["text_linear"] == 2 * (3 * delta_layer + gated_full + 4 * 3 * 8 * 12) * 5
    assert parts["text_attention"] == (1 + 2 + 3 + 4 + 5) * (2 * 8 + 2 * 8)  # one full-attention layer


@pytest.mark.parametrize("targets", ["all-linear", LANGUAGE_MODEL_LINEAR])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_matches_torch_flop_counter_on_a_real_lora_step(targets, checkpointing):
    """The linears' share of a real forward + backward of the tiny Qwen3-VL with adapters, counted by torch
    (matmuls and the patch convolution; CPU attention kernels are not counted by torch, so neither here)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import Qwen3VLForConditionalGeneration

    from edugraph_pipeline.training.tiny_model import tiny_config

    config = tiny_config()
    torch.manual_seed(0)
    model = get_peft_model(Qwen3VLForConditionalGeneration(config),
                           LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    patches, merged = 8 * 12, 8 * 12 // 4
    ids = torch.tensor([[151644, 872, 198, 151652] + [config.image_token_id] * merged + [151653, 100, 200, 300]])
    with FlopCounterMode(display=False) as counter:
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=torch.randn(patches, 1536),
                    image_grid_thw=torch.tensor([[1, 8, 12]]), mm_token_type_ids=(ids == config.image_token_id).long())
        out.logits.float().sum().backward()
    torch_counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    matmuls = torch_counts["aten.mm"] + torch_counts["aten.addmm"]

    shape = SampleShape(sequence=ids.shape[1], logit_positions=ids.shape[1], images=1, patches_per_image=patches)
    counted = sample_flops(from_config(config.to_dict()), shape, targets, 4, checkpointing)
    f = counted.forward
    assert torch_counts["aten.convolution"] == f["vision_patch_embed"]
    vision_backward = targets == "all-linear"
    attention = f["text_attention"] * (4 if checkpointing else 3)
    attention += f["vision_attention"] * ((4 if checkpointing else 3) if vision_backward else 1)
    ours = (counted.hardware if checkpointing else counted.model) - f["vision_patch_embed"] - attention
    if checkpointing:
        assert ours == pytest.approx(matmuls, rel=1e-4)
    else:
        assert ours == matmuls
