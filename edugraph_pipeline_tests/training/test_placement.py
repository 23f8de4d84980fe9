"""Memory placement on the cards the pipeline meets (device facts injected: name and total memory as nvidia-smi
reports them), for every profile: precision, micro-batch, gradient checkpointing, and the numbers behind them."""

from __future__ import annotations

import json

import pytest

from edugraph_pipeline.training.placement import (
    GIB,
    OPTIMISATION_HEADROOM,
    GpuMemory,
    MemoryPlanError,
    Override,
    estimate,
    plan,
    workload,
)
from edugraph_pipeline.training.placement_table import REFERENCE_GPUS, all_profiles, markdown_table, stage_plan
from edugraph_pipeline.training.profiles import PROFILES, stage_config
from edugraph_pipeline.training.published_models import for_base_model

L4, A100_40, A100_80, H100, H200 = (REFERENCE_GPUS[name] for name in REFERENCE_GPUS)

# (profile, card) -> (precision, micro-batch, gradient checkpointing), stage 2 with each profile's LoRA targets
# (the Hub profiles: `language`, vision tower frozen; docs/training.md)
EXPECTED = {
    ("4b", L4): ("bf16", 2, True),  # the point: a 4B fits bf16 LoRA on a 24 GB L4
    ("2b", L4): ("bf16", 4, True),
    ("8b", L4): ("bf16", 1, True),  # 16.3 GiB of bf16 weights + 2.6 GiB LoRA state: bf16 just fits (22.3 GiB)
    ("qwen3.5-4b", L4): ("bf16", 2, True),
    ("qwen3.5-9b", L4): ("nf4", 1, True),
    ("4b", A100_40): ("bf16", 2, False),
    ("8b", A100_40): ("bf16", 1, False),
    ("qwen3.5-27b", A100_40): ("nf4", 1, True),
    ("4b", A100_80): ("bf16", 4, False),
    ("8b", A100_80): ("bf16", 4, False),
    ("qwen3.5-27b", A100_80): ("bf16", 1, True),
    ("2b", H100): ("bf16", 8, False),
    ("4b", H100): ("bf16", 4, False),
    ("8b", H100): ("bf16", 4, False),
    ("qwen3.5-27b", H100): ("bf16", 1, True),
    ("2b", H200): ("bf16", 8, False),
    ("4b", H200): ("bf16", 8, False),
    ("8b", H200): ("bf16", 8, False),
    ("qwen3.5-4b", H200): ("bf16", 4, False),
    ("qwen3.5-9b", H200): ("bf16", 4, False),
}


@pytest.mark.parametrize(("name", "gpu"), list(EXPECTED), ids=[f"{n}-{g.name}" for n, g in EXPECTED])
def test_decisions(name, gpu):
    chosen = stage_plan(all_profiles()[name], gpu)
    assert (chosen.precision, chosen.micro_batch, chosen.gradient_checkpointing) == EXPECTED[name, gpu]
    prof = all_profiles()[name]
    assert chosen.micro_batch * chosen.grad_accum == prof.batch_size * prof.grad_accum  # the effective batch kept
    assert chosen.estimate.total <= gpu.total_bytes
    assert chosen.fits


@pytest.mark.parametrize("name", sorted(all_profiles()))
@pytest.mark.parametrize("gpu", [L4, A100_40, A100_80, H100, H200], ids=lambda g: g.name)
def test_every_profile_on_every_card_is_decided_within_memory(name, gpu):
    prof = all_profiles()[name]
    try:
        chosen = stage_plan(prof, gpu)
    except MemoryPlanError as refused:
        assert (name, gpu) == ("qwen3.5-27b", L4)
        assert refused.smallest.total > gpu.total_bytes
        return
    assert chosen.micro_batch * chosen.grad_accum == prof.batch_size * prof.grad_accum
    limit = gpu.total_bytes * (1 if chosen.gradient_checkpointing else OPTIMISATION_HEADROOM)
    assert chosen.estimate.total <= limit
    if chosen.precision == "nf4":  # QLoRA only where bf16 LoRA with checkpointing does not fit at micro-batch 1
        work = _work(name)
        assert estimate(work, "bf16", 1, True).total > gpu.total_bytes


def test_on_an_h200_every_profile_trains_bf16_without_checkpointing():
    for name, prof in all_profiles().items():
        chosen = stage_plan(prof, H200)
        assert chosen.precision == "bf16", name
        assert chosen.micro_batch >= prof.batch_size, name
        assert not chosen.gradient_checkpointing, name
        if name not in ("tiny", "qwen3.5-27b"):  # tiny's micro-batch already is its effective batch
            assert chosen.micro_batch > prof.batch_size, name
    # the 27B's pure-torch Gated DeltaNet keeps ~0.45 MB per token and layer: one sample without checkpointing
    # fits (113 GiB), a second does not (docs/qwen3_5.md)
    assert stage_plan(PROFILES["qwen3.5-27b"], H200).micro_batch == 1


def test_a_27b_on_an_l4_is_refused_with_the_numbers():
    with pytest.raises(MemoryPlanError) as refused:
        stage_plan(PROFILES["qwen3.5-27b"], L4)
    message = str(refused.value)
    assert "does not fit NVIDIA L4 (22.5 GiB)" in message
    assert "QLoRA (NF4) with gradient checkpointing and a micro-batch of 1 needs about 28.9 GiB" in message
    assert refused.value.smallest.weights / GIB == pytest.approx(17.5, abs=0.1)  # NF4 decoder + bf16 rest


def test_the_plan_carries_its_numbers_as_json():
    chosen = stage_plan(PROFILES["4b"], L4)
    record = json.loads(json.dumps(chosen.to_dict()))
    assert record["precision"] == "bf16" and record["quantize_4bit"] is False
    assert record["effective_batch"] == 8 and record["gradient_checkpointing"] is True
    assert record["estimate_gib"]["weights"] == 8.27  # 4.44 B parameters in bf16
    assert record["estimate_gib"]["lora_state"] == 1.97  # 132 M trainable (language targets) x 16 bytes
    assert record["estimate_gib"]["total"] == pytest.approx(sum(
        record["estimate_gib"][part] for part in ("weights", "lora_state", "activations", "reserve")), abs=0.02)
    assert "gradient checkpointing" in record["reason"] and "22.5 GiB" in record["reason"]


def _work(name: str, stage: str = "worksheet"):
    prof = all_profiles()[name]
    cfg = stage_config(stage, base_model="-", dataset_path="-", output_dir="-", prof=prof, mode="train",
                       device="cuda")
    return workload(cfg, for_base_model(prof.base_model))


def test_the_estimate_moves_the_right_way():
    work = _work("4b")
    bf16, nf4 = estimate(work, "bf16", 2, True), estimate(work, "nf4", 2, True)
    assert nf4.weights < bf16.weights / 2 and nf4.activations == bf16.activations
    assert estimate(work, "bf16", 2, False).activations > 5 * bf16.activations  # checkpointing keeps layer inputs
    assert estimate(work, "bf16", 4, False).activations == pytest.approx(2 * estimate(work, "bf16", 2, False)
                                                                         .activations)
    knowledge = _work("4b", "knowledge")
    assert knowledge.sample.images == 0 and work.sample.patches == 32 * 32 * 768 // 256


def test_overrides_are_honoured_and_recorded():
    work = _work("4b")
    forced = plan(work, H200, Override(precision="nf4"))
    assert forced.precision == "nf4" and forced.overridden == ("precision",)
    assert not forced.gradient_checkpointing  # the rest is still chosen: memory is plentiful
    small = plan(work, H200, Override(micro_batch=2, gradient_checkpointing=True))
    assert (small.micro_batch, small.grad_accum, small.gradient_checkpointing) == (2, 4, True)
    beyond = plan(_work("qwen3.5-27b"), L4, Override(precision="nf4"))
    assert not beyond.fits and "estimate exceeds" in beyond.reason
    with pytest.raises(ValueError, match="micro_batch=3 does not divide the effective batch 8"):
        plan(work, H200, Override(micro_batch=3))
    with pytest.raises(ValueError, match="precision='fp8'"):
        Override(precision="fp8")


def test_override_parsing():
    assert Override.parse("") == Override()
    assert Override.parse("precision=nf4, micro_batch=2,gradient_checkpointing=off") == Override("nf4", 2, False)
    assert Override.parse("gradient_checkpointing=ON") == Override(gradient_checkpointing=True)
    for bad in ("precision=fp16", "micro_batch=two", "micro_batch=0", "checkpointing=on", "gradient_checkpointing=maybe"):
        with pytest.raises(ValueError, match="placement override"):
            Override.parse(bad)


def test_markdown_table_has_a_row_per_profile_and_card():
    table = markdown_table()
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(all_profiles()) * len(REFERENCE_GPUS)
    assert "| 4b (Qwen/Qwen3-VL-4B-Instruct) | L4 24 GB | bf16 LoRA | 2 × 4 | on |" in table
    assert "| qwen3.5-27b (Qwen/Qwen3.5-27B) | L4 24 GB | **does not fit** |" in table


def test_a_small_card_makes_even_the_tiny_profile_shrink():
    gpu = GpuMemory("small", int(1.8 * GIB))
    chosen = stage_plan(PROFILES["tiny"], gpu)
    assert chosen.micro_batch < PROFILES["tiny"].batch_size or chosen.gradient_checkpointing
