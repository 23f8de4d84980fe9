"""The "profile x card -> placement + memory estimate" table of the README's "Real-size runs" section, from the
placement rule itself (`placement.plan`) on reference cards' memory as ``nvidia-smi`` reports it.

    python -m edugraph_pipeline.training.placement_table          # prints the Markdown table
"""

from __future__ import annotations

from edugraph_pipeline.training.placement import GIB, GpuMemory, MemoryPlanError, plan, workload
from edugraph_pipeline.training.profiles import PROFILES, ModelProfile, stage_config
from edugraph_pipeline.training.published_models import for_base_model

MIB = 2**20
# memory.total of nvidia-smi, MiB
REFERENCE_GPUS: dict[str, GpuMemory] = {
    "L4 24 GB": GpuMemory("NVIDIA L4", 23034 * MIB),
    "A100 40 GB": GpuMemory("NVIDIA A100-SXM4-40GB", 40960 * MIB),
    "A100 80 GB": GpuMemory("NVIDIA A100-SXM4-80GB", 81920 * MIB),
    "H100 80 GB": GpuMemory("NVIDIA H100 80GB HBM3", 81559 * MIB),
    "H200 141 GB": GpuMemory("NVIDIA H200", 143771 * MIB),
}


def all_profiles() -> dict[str, ModelProfile]:
    return dict(PROFILES)


def stage_plan(prof: ModelProfile, gpu: GpuMemory, stage: str = "worksheet"):
    """The placement of one profile's stage on one card (MemoryPlanError when nothing fits)."""
    cfg = stage_config(stage, base_model=prof.base_model or "tiny", dataset_path="-", output_dir="-", prof=prof,
                       mode="train", device="cuda")
    return plan(workload(cfg, for_base_model(prof.base_model)), gpu)


def markdown_table(profiles: dict[str, ModelProfile] | None = None,
                   gpus: dict[str, GpuMemory] | None = None, stage: str = "worksheet") -> str:
    """One row per profile and card: precision, micro-batch x accumulation, checkpointing, the estimate."""
    profiles = profiles or all_profiles()
    gpus = gpus or REFERENCE_GPUS
    lines = [
        "| Profile (base) | Card | Placement | Micro-batch × accum | Checkpointing | Estimate, GiB: weights + LoRA "
        "state + activations + reserve = total |",
        "|---|---|---|---|---|---|",
    ]
    for name, prof in profiles.items():
        base = prof.base_model or "tiny, built here"
        for card, gpu in gpus.items():
            try:
                chosen = stage_plan(prof, gpu, stage)
            except MemoryPlanError as refused:
                lines.append(f"| {name} ({base}) | {card} | **does not fit** | – | – | QLoRA, micro-batch 1, "
                             f"checkpointing: {_parts(refused.smallest)} of {gpu.total_gib:.1f} |")
                continue
            precision = "bf16 LoRA" if chosen.precision == "bf16" else "QLoRA (NF4)"
            lines.append(
                f"| {name} ({base}) | {card} | {precision} | {chosen.micro_batch} × {chosen.grad_accum} | "
                f"{'on' if chosen.gradient_checkpointing else 'off'} | {_parts(chosen.estimate)} of "
                f"{gpu.total_gib:.1f} |"
            )
    return "\n".join(lines)


def _parts(est) -> str:
    values = (est.weights, est.lora_state, est.activations, est.reserve, est.total)
    return "{:.1f} + {:.1f} + {:.1f} + {:.1f} = **{:.1f}**".format(*(value / GIB for value in values))


if __name__ == "__main__":
    print(markdown_table())
