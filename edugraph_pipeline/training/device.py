"""Where a training stage runs and how it uses the card: the rule, decided once per stage, never silently.

* ``EDUGRAPH_DEVICE=auto`` (default): CUDA when torch sees a device. Without one only the ``tiny`` profile trains
  on the CPU; any other profile fails at once naming what is missing (a 4B in fp32 on a VM's CPUs would run
  into the 24 h limit instead of failing).
* ``cuda``: CUDA or an error.
* ``cpu``: the CPU for any profile, on purpose (tests, debugging), in fp32.
* On CUDA the memory placement (`placement.plan`) decides precision (bf16 LoRA, or QLoRA's NF4 language model
  where bf16 does not fit), the micro-batch (keeping the profile's effective batch) and gradient checkpointing from
  the card's total memory; QLoRA chosen (or forced) without an importable bitsandbytes fails.
* On the CPU there is nothing to place: fp32, the profile's micro-batch and gradient accumulation, no
  checkpointing, unless the operator's override fixes the micro-batch or checkpointing; an override of the
  precision cannot be honoured there and fails.
* Stage 2 under QLoRA keeps the knowledge adapter as a frozen adapter beside the one it trains
  (`stack_knowledge_adapter`): merging stage 1 into a base that is then quantized to NF4 would round most of
  stage 1's change away (mostly smaller than one NF4 step; `stacking.py`). In bf16 and fp32 it is merged.

`choose_placement` is the rule as a pure function of the facts; `placement_for` gathers the facts from torch,
bitsandbytes and the base's ``config.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edugraph_pipeline.training.placement import (
    GpuMemory,
    MemoryPlanError,
    Override,
    Workload,
    current_gpu,
    plan,
    workload,
)
from edugraph_pipeline.training.profiles import DEVICE_ENV, DEVICES, PLACEMENT_ENV, TINY, StageConfig

FP32, BF16, NF4 = "fp32", "bf16", "nf4"


class PlacementError(RuntimeError):
    """The stage cannot run as configured (no CUDA, no bitsandbytes, too little memory): nothing was trained."""


@dataclass(frozen=True)
class Placement:
    device: str  # "cuda" or "cpu"
    precision: str  # "fp32" (CPU), "bf16" (LoRA on bf16 weights) or "nf4" (QLoRA)
    micro_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    reason: str  # why, in words (recorded in the stage's metrics)
    memory: dict | None = None  # on CUDA: the memory plan (`MemoryPlan.to_dict`: the card, the estimate)
    stack_knowledge_adapter: bool = False  # stage 2: stage 1 stays a frozen adapter instead of being merged

    @property
    def quantize_4bit(self) -> bool:
        return self.precision == NF4

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum

    def to_dict(self) -> dict:
        return {**asdict(self), "quantize_4bit": self.quantize_4bit, "effective_batch": self.effective_batch}


@dataclass(frozen=True)
class Facts:
    cuda_available: bool
    torch_version: str
    torch_cuda: str | None  # the CUDA version torch was built for (None: a CPU-only build)
    bitsandbytes_error: str | None  # None: importable (or not looked for)
    gpu: GpuMemory | None = None  # the first CUDA device's name and total memory


def _cpu(reason: str, micro_batch: int, grad_accum: int, override: Override) -> Placement:
    if override.precision is not None:
        raise PlacementError(f"{PLACEMENT_ENV}: precision={override.precision} applies to CUDA only; the CPU trains "
                             f"in fp32. Drop precision from the override to train on the CPU.")
    effective = micro_batch * grad_accum
    micro = override.micro_batch or micro_batch
    if effective % micro:
        raise PlacementError(f"{PLACEMENT_ENV}: micro_batch={micro} does not divide the effective batch {effective}")
    checkpointing = bool(override.gradient_checkpointing)
    why = (f"{reason}: fp32, micro-batch {micro} x {effective // micro} (effective {effective}), gradient "
           f"checkpointing {'on' if checkpointing else 'off'}")
    if override.fixed():
        why += f" (override: {', '.join(override.fixed())})"
    return Placement("cpu", FP32, micro, effective // micro, checkpointing, why)


def choose_placement(requested: str, profile: str, facts: Facts, *, micro_batch: int, grad_accum: int,
                     override: Override = Override(), work: Workload | None = None) -> Placement:
    """The placement of a stage: `micro_batch` x `grad_accum` is the profile's; `work` (needed on CUDA) is the
    stage's workload for the memory plan."""
    if requested not in DEVICES:
        raise PlacementError(f"{DEVICE_ENV}={requested!r}: expected one of {DEVICES}")
    if requested == "cpu":
        return _cpu(f"{DEVICE_ENV}=cpu", micro_batch, grad_accum, override)
    if not facts.cuda_available:
        if requested == "auto" and profile == TINY:
            return _cpu("no CUDA device: the tiny profile trains on the CPU", micro_batch, grad_accum, override)
        build = (
            f"this torch {facts.torch_version} is a CPU-only build"
            if facts.torch_cuda is None
            else f"torch {facts.torch_version} (CUDA {facts.torch_cuda}) sees no CUDA device: is the NVIDIA "
            f"driver installed and loaded (nvidia-smi), and is it new enough for CUDA {facts.torch_cuda}?"
        )
        wanted = f"{DEVICE_ENV}=cuda" if requested == "cuda" else f"profile {profile!r}"
        raise PlacementError(
            f"{wanted} trains on a CUDA GPU, but {build} Set {DEVICE_ENV}=cpu to train on the CPU on purpose "
            f"(slow; for tests)."
        )
    if work is None or facts.gpu is None:
        raise ValueError("a CUDA placement needs the stage's workload and the GPU's memory")
    try:
        chosen = plan(work, facts.gpu, override)
    except (MemoryPlanError, ValueError) as exc:
        raise PlacementError(f"profile {profile!r}: {exc}") from None
    if chosen.quantize_4bit and facts.bitsandbytes_error is not None:
        raise PlacementError(
            f"profile {profile!r} on {facts.gpu.name} ({facts.gpu.total_gib:.1f} GiB) trains with QLoRA (4-bit NF4: "
            f"{chosen.reason}) but bitsandbytes is not usable: {facts.bitsandbytes_error}. Install the bitsandbytes "
            f"pinned in requirements.lock (the trainer image has it)."
        )
    return Placement("cuda", chosen.precision, chosen.micro_batch, chosen.grad_accum, chosen.gradient_checkpointing,
                     chosen.reason, memory=chosen.to_dict(), stack_knowledge_adapter=chosen.quantize_4bit)


def current_facts() -> Facts:
    import torch

    cuda = torch.cuda.is_available()
    error = None
    if cuda:
        try:
            import bitsandbytes  # noqa: F401
        except Exception as exc:  # ImportError, or a CUDA-library mismatch raised while loading its kernels
            error = f"{type(exc).__name__}: {exc}"
    return Facts(cuda, torch.__version__, torch.version.cuda, error, current_gpu() if cuda else None)


def placement_for(cfg: StageConfig, base_folder: str | None = None) -> Placement:
    """The placement of `cfg` on this machine; `base_folder`: the local folder of the base (its config.json sizes
    the memory plan on CUDA; resolved lazily, so the no-CUDA rule is checked before anything is downloaded)."""
    try:
        override = Override.parse(cfg.placement)
    except ValueError as exc:
        raise PlacementError(f"{PLACEMENT_ENV}={cfg.placement!r}: {exc}") from None
    facts = current_facts()
    work = None
    if facts.cuda_available and cfg.device != "cpu":
        from edugraph_pipeline.training.published_models import for_base_model
        from edugraph_pipeline.training.revision import pinned_folder

        folder = base_folder or pinned_folder(cfg.base_model, cfg.base_revision)
        work = workload(cfg, for_base_model(folder))
    return choose_placement(cfg.device, cfg.profile, facts, micro_batch=cfg.batch_size, grad_accum=cfg.grad_accum,
                            override=override, work=work)


def placement_markdown(record: dict) -> str:
    """A stage's placement (`Placement.to_dict`, as its metrics carry it) as a small Markdown table."""
    rows = [("device", record.get("device")), ("precision", record.get("precision")),
            ("micro-batch × accumulation", f"{record.get('micro_batch')} × {record.get('grad_accum')} "
                                          f"(effective {record.get('effective_batch')})"),
            ("gradient checkpointing", "on" if record.get("gradient_checkpointing") else "off")]
    memory = record.get("memory")
    if memory:
        estimate = memory.get("estimate_gib") or {}
        rows.append(("GPU", f"{memory.get('gpu')} ({memory.get('gpu_total_gib')} GiB)"))
        rows.append(("estimate, GiB", " + ".join(f"{estimate.get(part)} {part.replace('_', ' ')}" for part in
                                                  ("weights", "lora_state", "activations", "reserve"))
                     + f" = {estimate.get('total')}"))
        if memory.get("overridden"):
            rows.append(("override", ", ".join(memory["overridden"]) + ("" if memory.get("fits") else
                                                                         " (beyond the estimate)")))
    if record.get("stack_knowledge_adapter"):
        rows.append(("knowledge adapter", "stacked frozen (not merged into the NF4 base)"))
    rows.append(("why", str(record.get("reason", "")).replace("|", "/")))
    return "\n".join(["| placement | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)])
