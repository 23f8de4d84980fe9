"""Where a stage trains and how it uses the card (issues 10, 25): no silent fallback to the CPU; on CUDA the card's
memory decides bf16 or QLoRA, the micro-batch and checkpointing (device facts injected)."""

from __future__ import annotations

import collections

import pytest

from edugraph_pipeline.training.device import (
    Facts,
    PlacementError,
    choose_placement,
    placement_for,
    placement_markdown,
)
from edugraph_pipeline.training.placement import GpuMemory, Override, workload
from edugraph_pipeline.training.profiles import profile, stage_config
from edugraph_pipeline.training.published_models import for_base_model

L4 = GpuMemory("NVIDIA L4", 23034 * 2**20)
NO_CUDA = Facts(cuda_available=False, torch_version="2.14.1+cu130", torch_cuda="13.0", bitsandbytes_error=None)
CPU_BUILD = Facts(cuda_available=False, torch_version="2.14.1+cpu", torch_cuda=None, bitsandbytes_error=None)
CUDA = Facts(cuda_available=True, torch_version="2.14.1+cu130", torch_cuda="13.0", bitsandbytes_error=None, gpu=L4)
CUDA_NO_BNB = Facts(True, "2.14.1+cu130", "13.0", "ModuleNotFoundError: No module named 'bitsandbytes'", L4)


def _work(name: str):
    prof = profile(name)
    cfg = stage_config("worksheet", base_model="-", dataset_path="-", output_dir="-", prof=prof, mode="train",
                       device="cuda")
    return workload(cfg, for_base_model(prof.base_model))


def place(requested, name, facts, override=Override(), micro_batch=2, grad_accum=4):
    work = _work(name) if facts.cuda_available else None
    return choose_placement(requested, name, facts, micro_batch=micro_batch, grad_accum=grad_accum,
                            override=override, work=work)


def test_a_real_profile_without_cuda_fails_naming_the_driver_and_the_way_out():
    with pytest.raises(PlacementError) as failure:
        place("auto", "4b", NO_CUDA)
    message = str(failure.value)
    assert "profile '4b'" in message and "nvidia-smi" in message and "CUDA 13.0" in message
    assert "EDUGRAPH_DEVICE=cpu" in message
    with pytest.raises(PlacementError, match="CPU-only build"):
        place("auto", "2b", CPU_BUILD)
    with pytest.raises(PlacementError, match="EDUGRAPH_DEVICE=cuda trains on a CUDA GPU"):
        place("cuda", "tiny", NO_CUDA)


def test_only_tiny_falls_back_to_the_cpu_and_the_cpu_keeps_the_profiles_batch_in_fp32():
    fallback = place("auto", "tiny", NO_CUDA, micro_batch=4, grad_accum=1)
    assert (fallback.device, fallback.precision, fallback.micro_batch, fallback.grad_accum) == ("cpu", "fp32", 4, 1)
    assert fallback.reason.startswith("no CUDA device: the tiny profile trains on the CPU")
    on_purpose = place("cpu", "8b", CUDA, micro_batch=1, grad_accum=8)
    assert (on_purpose.device, on_purpose.quantize_4bit, on_purpose.gradient_checkpointing) == ("cpu", False, False)
    assert on_purpose.reason == ("EDUGRAPH_DEVICE=cpu: fp32, micro-batch 1 x 8 (effective 8), gradient "
                                 "checkpointing off")
    assert on_purpose.memory is None and not on_purpose.stack_knowledge_adapter


def test_the_cpu_honours_micro_batch_and_checkpointing_overrides_and_refuses_a_precision():
    forced = place("cpu", "4b", NO_CUDA, Override(micro_batch=1, gradient_checkpointing=True))
    assert (forced.micro_batch, forced.grad_accum, forced.gradient_checkpointing) == (1, 8, True)
    assert "(override: micro_batch, gradient_checkpointing)" in forced.reason
    with pytest.raises(PlacementError, match="EDUGRAPH_TRAINING_PLACEMENT: precision=nf4 applies to CUDA only"):
        place("cpu", "4b", NO_CUDA, Override(precision="nf4"))
    with pytest.raises(PlacementError, match="micro_batch=3 does not divide the effective batch 8"):
        place("cpu", "4b", NO_CUDA, Override(micro_batch=3))


def test_on_cuda_the_card_decides_and_qlora_needs_bitsandbytes():
    four = place("auto", "4b", CUDA)  # a 4B fits bf16 LoRA on a 24 GB L4: no NF4, no bitsandbytes needed
    assert (four.device, four.precision, four.micro_batch, four.grad_accum) == ("cuda", "bf16", 2, 4)
    assert four.gradient_checkpointing and four.memory["gpu"] == "NVIDIA L4" and not four.stack_knowledge_adapter
    assert place("auto", "4b", CUDA_NO_BNB) == four
    assert place("auto", "4b", CUDA) == place("cuda", "4b", CUDA)
    nine = place("auto", "qwen3.5-9b", CUDA, micro_batch=1, grad_accum=8)  # 17.5 GiB of bf16 weights: QLoRA
    assert nine.precision == "nf4" and nine.quantize_4bit and nine.stack_knowledge_adapter
    assert nine.memory["estimate_gib"]["total"] <= L4.total_gib
    with pytest.raises(PlacementError, match="QLoRA.*bitsandbytes is not usable.*No module named 'bitsandbytes'"):
        place("auto", "qwen3.5-9b", CUDA_NO_BNB, micro_batch=1, grad_accum=8)
    with pytest.raises(PlacementError, match="QLoRA.*bitsandbytes is not usable"):
        place("auto", "4b", CUDA_NO_BNB, Override(precision="nf4"))
    with pytest.raises(PlacementError, match="profile 'qwen3.5-27b': does not fit NVIDIA L4"):
        place("auto", "qwen3.5-27b", CUDA, micro_batch=1, grad_accum=8)


def test_the_placement_reads_as_a_table():
    table = placement_markdown(place("auto", "qwen3.5-9b", CUDA, micro_batch=1, grad_accum=8).to_dict())
    assert "| precision | nf4 |" in table and "| micro-batch × accumulation | 1 × 8 (effective 8) |" in table
    assert "| GPU | NVIDIA L4 (22.49 GiB) |" in table and "stacked frozen" in table
    assert "| estimate, GiB |" in table


def test_unknown_device_value_is_refused():
    with pytest.raises(ValueError, match="EDUGRAPH_DEVICE='tpu': expected one of"):
        stage_config("knowledge", base_model="x", dataset_path="d", output_dir="o", prof=profile("4b"), mode="train",
                     device="tpu")


def test_this_machine_refuses_a_4b_stage_before_loading_anything(monkeypatch, tmp_path, stage_cfg):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-CUDA rule is covered by the pure tests above")
    monkeypatch.delenv("EDUGRAPH_DEVICE", raising=False)
    cfg = stage_cfg("worksheet").with_(profile="4b", device="auto", base_model=str(tmp_path / "x"))
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
