"""Where a stage trains, and 4-bit: no silent fallback to the CPU or to bf16 (issue 10)."""

from __future__ import annotations

import collections

import pytest

from edugraph_pipeline.training.device import Facts, PlacementError, choose_placement, placement_for
from edugraph_pipeline.training.profiles import profile, stage_config

NO_CUDA = Facts(cuda_available=False, torch_version="2.14.1+cu130", torch_cuda="13.0", bitsandbytes_error=None)
CPU_BUILD = Facts(cuda_available=False, torch_version="2.14.1+cpu", torch_cuda=None, bitsandbytes_error=None)
CUDA = Facts(cuda_available=True, torch_version="2.14.1+cu130", torch_cuda="13.0", bitsandbytes_error=None)
CUDA_NO_BNB = Facts(True, "2.14.1+cu130", "13.0", "ModuleNotFoundError: No module named 'bitsandbytes'")


def test_a_real_profile_without_cuda_fails_naming_the_driver_and_the_way_out():
    with pytest.raises(PlacementError) as failure:
        choose_placement("auto", "4b", True, NO_CUDA)
    message = str(failure.value)
    assert "profile '4b'" in message and "nvidia-smi" in message and "CUDA 13.0" in message
    assert "EDUGRAPH_DEVICE=cpu" in message
    with pytest.raises(PlacementError, match="CPU-only build"):
        choose_placement("auto", "2b", True, CPU_BUILD)
    with pytest.raises(PlacementError, match="EDUGRAPH_DEVICE=cuda trains on a CUDA GPU"):
        choose_placement("cuda", "tiny", False, NO_CUDA)


def test_only_tiny_falls_back_to_the_cpu_and_cpu_on_purpose_turns_4bit_off_with_a_reason():
    assert choose_placement("auto", "tiny", False, NO_CUDA).device == "cpu"
    on_purpose = choose_placement("cpu", "8b", True, CUDA)
    assert (on_purpose.device, on_purpose.quantize_4bit) == ("cpu", False)
    assert "EDUGRAPH_DEVICE=cpu" in on_purpose.reason and "4-bit quantization is off" in on_purpose.reason


def test_qlora_on_cuda_needs_bitsandbytes():
    with pytest.raises(PlacementError, match="QLoRA.*bitsandbytes is not usable.*No module named 'bitsandbytes'"):
        choose_placement("auto", "4b", True, CUDA_NO_BNB)
    assert choose_placement("auto", "4b", True, CUDA) == choose_placement("cuda", "4b", True, CUDA)
    assert choose_placement("auto", "4b", True, CUDA).quantize_4bit
    assert not choose_placement("auto", "tiny", False, CUDA_NO_BNB).quantize_4bit  # tiny asks for no 4-bit


def test_unknown_device_value_is_refused():
    with pytest.raises(ValueError, match="EDUGRAPH_DEVICE='tpu': expected one of"):
        stage_config("knowledge", base_model="x", dataset_path="d", output_dir="o", prof=profile("4b"), mode="train",
                     device="tpu")


def test_this_machine_refuses_a_4b_stage_before_loading_anything(monkeypatch, tmp_path, stage_cfg):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-CUDA rule is covered by the pure tests above")
    monkeypatch.delenv("EDUGRAPH_DEVICE", raising=False)
    cfg = stage_cfg("worksheet").with_(profile="4b", quantize_4bit=True, device="auto", base_model=str(tmp_path / "x"))
    with pytest.raises(PlacementError, match="profile '4b' trains on a CUDA GPU"):
        placement_for(cfg)
    from edugraph_pipeline.training.sft import train_stage

    with pytest.raises(PlacementError):
        train_stage(cfg)  # the base folder does not even exist: the rule is checked first
    assert not (tmp_path / "worksheet" / "adapter").exists()


def test_qlora_quantizes_the_language_model_only(raw_tiny_model):
    """The real bitsandbytes 4-bit load (its CPU backend): vision tower and lm_head stay plain bf16 linears."""
    import torch
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.training.sft import quantization_config

    model = AutoModelForImageTextToText.from_pretrained(
        str(raw_tiny_model), quantization_config=quantization_config(), dtype=torch.bfloat16, device_map={"": "cpu"}
    )
    kinds = collections.Counter(
        (name.split(".")[1] if name.startswith("model.") else name, type(module).__name__)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    )
    assert kinds == {("language_model", "Linear4bit"): 14, ("visual", "Linear"): 12, ("lm_head", "Linear"): 1}
