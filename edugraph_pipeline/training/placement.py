"""How a LoRA stage uses the GPU it got: bf16 LoRA or QLoRA (NF4), the micro-batch, gradient checkpointing,
decided from the card's memory and an estimate of what the stage needs, instead of one setting for every card.

The estimate (`estimate`, bytes; reported in GiB):

* weights: every parameter in bf16, or under QLoRA the decoder's linears in NF4 with double quantization
  (4 + 8/64 + 32/(64 x 256) bits each; the vision tower and the head stay bf16, as `sft.NOT_QUANTIZED` keeps them)
  plus one dequantized linear at a time;
* LoRA state: the adapters' parameters for the targets and rank (architecture.lora_targets) at 16 bytes each:
  fp32 weight, fp32 gradient, Adam's two fp32 moments;
* activations per micro-batch: what autograd keeps for the backward pass, tensor by tensor for transformers 5.24's
  layers (`_text_layer_bytes`, `_vision_block_bytes`: fp32 RMSNorm inputs, SDPA's q/k/v/out with grouped keys
  expanded, the SwiGLU intermediates, Gated DeltaNet's fp32 torch kernel, the input each adapter keeps, and
  its dropout copy and mask); with gradient checkpointing only each layer's input plus one layer recomputed;
  plus the logits where the head runs (bf16, their fp32 copy and gradient), the hidden-state gradients, and the
  vision tower only where gradients flow through it (an adapter in it);
* a reserve: 1 GiB (CUDA context, cuBLAS workspace) + 8 % of the rest (allocator fragmentation).

The rule (`plan`), cheapest in accuracy and time first, keeping the effective batch (micro-batch x gradient
accumulation). bf16 LoRA comes first wherever it fits: NF4 costs step time and accuracy, and stage 2 would
re-quantize a base with stage 1 merged in, whose change is smaller than one NF4 step. In order: bf16 without
checkpointing at the largest micro-batch that fits within `OPTIMISATION_HEADROOM` of the memory (a divisor of the
effective batch, at most `MAX_TOKENS_PER_MICRO_BATCH` tokens, at least the profile's: an optimisation, so it
leaves room for the estimate's error); else bf16 with checkpointing at the profile's micro-batch or the largest
smaller one that fits; else QLoRA the same two ways; else `MemoryPlanError` with the numbers. An `Override`
(``Override.parse("precision=nf4,micro_batch=2,gradient_checkpointing=on")``) fixes any of the three choices;
the plan then records whether the estimate says it fits. The decision (`MemoryPlan.to_dict`) carries its numbers and its reason, for the stage's
metrics and the adapter's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edugraph_pipeline.training.architecture import (
    FULL_ATTENTION,
    MERGER,
    TEXT,
    TEXT_PREFIX,
    VISION,
    VISION_PREFIX,
    Architecture,
    Linear,
    linears,
    lora_parameters,
    lora_targets,
    parameter_counts,
)
from edugraph_pipeline.training.flops import SampleShape
from edugraph_pipeline.training.lora_targets import target_modules
from edugraph_pipeline.training.profiles import StageConfig

GIB = 2**30
BF16, FP32 = 2, 4
NF4_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # bitsandbytes NF4, blocks of 64, double-quantized absmax
LORA_STATE_BYTES = 16  # fp32 weight + gradient + two Adam moments per trainable parameter
RESERVE_FIXED = 1 * GIB
RESERVE_SHARE = 0.08
MAX_TOKENS_PER_MICRO_BATCH = 16384  # beyond this a bigger micro-batch buys no throughput, only risk
OPTIMISATION_HEADROOM = 0.85  # dropping checkpointing (and growing the micro-batch) only within this share
LABEL_POSITIONS = 128  # positions per sample where the head runs (masked_lm_loss: the answer; answers are shorter)
DELTA_CHUNK = 64  # the chunk of transformers' torch Gated DeltaNet kernel
PRECISIONS = ("bf16", "nf4")


class MemoryPlanError(RuntimeError):
    """The stage does not fit the GPU even with QLoRA, checkpointing and a micro-batch of 1: nothing was trained."""

    def __init__(self, message: str, smallest: MemoryEstimate | None = None):
        super().__init__(message)
        self.smallest = smallest  # the estimate of the smallest configuration, for reports


@dataclass(frozen=True)
class GpuMemory:
    name: str
    total_bytes: int

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB


@dataclass(frozen=True)
class Workload:
    """One stage's training shape: the model, its adapters, the batch and one sample."""

    architecture: Architecture
    target_modules: object  # PEFT's target_modules: "all-linear", a regular expression, or names
    lora_r: int
    lora_dropout: float
    micro_batch: int  # the profile's
    grad_accum: int
    sample: SampleShape

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum


def workload(cfg: StageConfig, arch: Architecture) -> Workload:
    """The workload of a stage config (its LoRA targets as `lora_targets.target_modules` gives them). Sizes are
    upper bounds: the sequence is the config's max_length, a worksheet carries one image at the pixel budget, the
    knowledge stage none."""
    v = arch.vision
    pixels_per_patch = (v.patch_size) ** 2
    images = 1 if cfg.stage == "worksheet" else 0
    patches = cfg.max_pixels // pixels_per_patch if images else 0
    image_tokens = patches // v.patches_per_token
    sequence = cfg.max_length or image_tokens + 512
    sample = SampleShape(sequence=sequence, logit_positions=min(sequence, LABEL_POSITIONS), images=images,
                         patches_per_image=patches)
    targets = target_modules(cfg.stage, cfg.lora_targets)
    return Workload(arch, targets, cfg.lora.r, cfg.lora.dropout, cfg.batch_size, cfg.grad_accum, sample)


@dataclass(frozen=True)
class Override:
    """Choices fixed by the operator (None: the plan decides)."""

    precision: str | None = None  # "bf16" or "nf4"
    micro_batch: int | None = None
    gradient_checkpointing: bool | None = None

    def __post_init__(self):
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"placement override precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(f"placement override micro_batch={self.micro_batch}: expected a positive integer")

    @classmethod
    def parse(cls, text: str) -> Override:
        """``precision=bf16|nf4``, ``micro_batch=N``, ``gradient_checkpointing=on|off``, comma-separated; empty:
        no override."""
        values: dict = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, _, value = item.partition("=")
            name, value = name.strip(), value.strip().lower()
            if name == "precision":
                values[name] = value
            elif name == "micro_batch" and value.isdigit():
                values[name] = int(value)
            elif name == "gradient_checkpointing" and value in ("on", "off", "true", "false", "1", "0"):
                values[name] = value in ("on", "true", "1")
            else:
                raise ValueError(f"placement override {item!r}: expected precision=bf16|nf4, micro_batch=<positive "
                                 f"integer> or gradient_checkpointing=on|off, comma-separated")
        return cls(**values)

    def fixed(self) -> tuple[str, ...]:
        return tuple(name for name in ("precision", "micro_batch", "gradient_checkpointing")
                     if getattr(self, name) is not None)


@dataclass(frozen=True)
class MemoryEstimate:
    weights: float
    lora_state: float
    activations: float
    reserve: float

    @property
    def total(self) -> float:
        return self.weights + self.lora_state + self.activations + self.reserve

    def to_gib(self) -> dict:
        parts = {"weights": self.weights, "lora_state": self.lora_state, "activations": self.activations,
                 "reserve": self.reserve, "total": self.total}
        return {name: round(value / GIB, 2) for name, value in parts.items()}


@dataclass(frozen=True)
class MemoryPlan:
    gpu: str
    gpu_total_gib: float
    precision: str  # "bf16" (LoRA on bf16 weights) or "nf4" (QLoRA)
    micro_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    estimate: MemoryEstimate
    reason: str
    fits: bool = True  # False only where an override goes beyond the estimate
    overridden: tuple[str, ...] = field(default=())

    @property
    def quantize_4bit(self) -> bool:
        return self.precision == "nf4"

    def to_dict(self) -> dict:
        return {
            "gpu": self.gpu, "gpu_total_gib": round(self.gpu_total_gib, 2), "precision": self.precision,
            "quantize_4bit": self.quantize_4bit, "micro_batch": self.micro_batch, "grad_accum": self.grad_accum,
            "effective_batch": self.micro_batch * self.grad_accum,
            "gradient_checkpointing": self.gradient_checkpointing, "estimate_gib": self.estimate.to_gib(),
            "fits": self.fits, "overridden": list(self.overridden), "reason": self.reason,
        }


def _kept_inputs(targets: list[Linear], dropout: float, r: int) -> float:
    """Bytes per application an adapter set keeps for its weight gradients: the input (one copy per tensor read
    when there is no dropout; each adapter's own dropout copy and its mask otherwise) and lora_A's output."""
    if dropout > 0:
        kept = sum(lin.in_features * (BF16 + 1) for lin in targets)
    else:
        kept = sum({lin.reads: lin.in_features * BF16 for lin in targets}.values())
    return kept + BF16 * r * len(targets)


def _text_layer_bytes(arch: Architecture, kind: str) -> float:
    """Bytes per token one frozen decoder layer keeps for backward (its adapters' inputs aside)."""
    t = arch.text
    kept = 2 * FP32 * t.hidden + 3 * BF16 * t.intermediate  # two fp32 RMSNorm inputs; SwiGLU's gate, silu, up
    if kind == FULL_ATTENTION:
        kept += FP32 * (t.query_width + t.kv_width)  # q_norm / k_norm inputs
        kept += 4 * BF16 * t.query_width  # SDPA's q, k, v (keys expanded to the query heads) and output
        if t.attention_output_gate:
            kept += 2 * BF16 * t.query_width  # the sigmoid gate and the output it multiplies
    else:  # Gated DeltaNet: conv input and output, the gated norm (fp32), the fp32 torch chunked kernel
        kept += 2 * BF16 * t.linear_conv_width + 3 * FP32 * t.linear_value_width
        heads, dk, dv = t.linear_value_heads, t.linear_key_head_dim, t.linear_value_head_dim
        kept += FP32 * (8 * heads * (dk + dv) + 3 * DELTA_CHUNK * heads + heads * dk * dv / DELTA_CHUNK)
    return kept


def _vision_block_bytes(arch: Architecture) -> float:
    """Bytes per patch one frozen vision block keeps: two LayerNorm inputs, SDPA's q/k/v/out, GELU's input."""
    v = arch.vision
    return 2 * BF16 * v.hidden + 4 * BF16 * v.hidden + BF16 * v.intermediate


def activation_bytes(work: Workload, micro_batch: int, checkpointing: bool) -> float:
    arch, sample = work.architecture, work.sample
    t, v = arch.text, arch.vision
    targets = lora_targets(arch, work.target_modules)
    by_module: dict[str, list[Linear]] = {}  # adapters by the attention / MLP / merger module they sit in
    for lin in targets:
        by_module.setdefault(lin.path.rsplit(".", 1)[0], []).append(lin)

    def adapters(*modules: str) -> float:
        return sum(_kept_inputs(by_module.get(module, []), work.lora_dropout, work.lora_r) for module in modules)

    modules = ("self_attn", "linear_attn", "mlp")
    text_layers = [
        _text_layer_bytes(arch, kind) + adapters(*(f"{TEXT_PREFIX}.{i}.{m}" for m in modules))
        for i, kind in enumerate(t.layer_types)
    ]
    per_sample = sample.sequence * (FP32 * t.hidden + 4 * BF16 * t.hidden)  # final norm; hidden-state gradients
    per_sample += sample.logit_positions * t.vocab * (BF16 + 2 * FP32)  # logits, their fp32 copy and gradient
    if checkpointing:
        per_sample += sample.sequence * (t.layers * BF16 * t.hidden + max(text_layers))
    else:
        per_sample += sample.sequence * sum(text_layers)
    vision_backward = any(lin.component in (VISION, MERGER) for lin in targets)
    if sample.patches and vision_backward:
        blocks = [
            _vision_block_bytes(arch) + adapters(f"{VISION_PREFIX}.blocks.{i}.attn", f"{VISION_PREFIX}.blocks.{i}.mlp")
            for i in range(v.depth)
        ]
        mergers = [f"{VISION_PREFIX}.merger"] + [f"{VISION_PREFIX}.deepstack_merger_list.{j}"
                                                 for j in range(v.deepstack_taps)]
        # per patch, each merger keeps its LayerNorm input and GELU input (both one patch wide)
        per_sample += sample.patches * len(mergers) * 2 * BF16 * v.hidden
        per_sample += sample.patches / v.patches_per_token * adapters(*mergers)
        if checkpointing:
            per_sample += sample.patches * (v.depth * BF16 * v.hidden + max(blocks))
        else:
            per_sample += sample.patches * sum(blocks)
    elif sample.patches:  # forward only: one block's tensors at a time
        per_sample += sample.patches * _vision_block_bytes(arch)
    return micro_batch * per_sample


def estimate(work: Workload, precision: str, micro_batch: int, checkpointing: bool) -> MemoryEstimate:
    arch = work.architecture
    counts = parameter_counts(arch)
    if precision == "nf4":
        largest = max(lin.in_features * lin.out_features for lin in linears(arch) if lin.component == TEXT)
        weights = counts.text_linear * NF4_BYTES + (counts.total - counts.text_linear) * BF16 + largest * BF16
    else:
        weights = counts.total * BF16
    state = lora_parameters(lora_targets(arch, work.target_modules), work.lora_r) * LORA_STATE_BYTES
    activations = activation_bytes(work, micro_batch, checkpointing)
    reserve = RESERVE_FIXED + RESERVE_SHARE * (weights + state + activations)
    return MemoryEstimate(weights, state, activations, reserve)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def plan(work: Workload, gpu: GpuMemory, override: Override = Override()) -> MemoryPlan:
    """The placement of `work` on `gpu` (see the module docstring for the rule)."""
    effective = work.effective_batch
    if override.micro_batch is not None and effective % override.micro_batch:
        raise ValueError(f"placement override micro_batch={override.micro_batch} does not divide the effective "
                         f"batch {effective} (micro-batch {work.micro_batch} x gradient accumulation "
                         f"{work.grad_accum})")
    budget = gpu.total_bytes

    def make(precision, micro, checkpointing, reason, fits=True):
        return MemoryPlan(gpu.name, gpu.total_gib, precision, micro, effective // micro, checkpointing,
                          estimate(work, precision, micro, checkpointing), reason, fits, override.fixed())

    def fitting(precision, checkpointing, micros):
        limit = budget if checkpointing else OPTIMISATION_HEADROOM * budget
        return [m for m in micros if estimate(work, precision, m, checkpointing).total <= limit]

    token_cap = max(1, MAX_TOKENS_PER_MICRO_BATCH // work.sample.sequence)
    growing = [m for m in _divisors(effective) if work.micro_batch <= m <= max(token_cap, work.micro_batch)]
    shrinking = sorted((m for m in _divisors(effective) if m <= work.micro_batch), reverse=True)
    reasons = {
        ("bf16", False): "bf16 LoRA fits without gradient checkpointing",
        ("bf16", True): "bf16 LoRA needs gradient checkpointing",
        ("nf4", False): "bf16 LoRA does not fit: QLoRA (NF4) fits without gradient checkpointing",
        ("nf4", True): "bf16 LoRA does not fit even with gradient checkpointing: QLoRA (NF4) with it",
    }
    options = [(precision, checkpointing, sorted(growing, reverse=True) if not checkpointing else shrinking,
                reasons[precision, checkpointing]) for precision in PRECISIONS for checkpointing in (False, True)]
    for precision, checkpointing, micros, why in options:
        if override.precision not in (None, precision):
            continue
        if override.gradient_checkpointing not in (None, checkpointing):
            continue
        if override.micro_batch is not None:
            micros = [override.micro_batch]
        chosen = fitting(precision, checkpointing, micros)
        if chosen:
            micro = chosen[0]
            return make(precision, micro, checkpointing, f"{why}; micro-batch {micro} x {effective // micro} "
                        f"(effective {effective}) on {gpu.total_gib:.1f} GiB")
    if override.fixed():  # honoured though the estimate says it does not fit: the operator knows more
        precision = override.precision or "nf4"
        checkpointing = True if override.gradient_checkpointing is None else override.gradient_checkpointing
        micro = override.micro_batch or 1
        return make(precision, micro, checkpointing, f"override {', '.join(override.fixed())}: the estimate exceeds "
                    f"{gpu.total_gib:.1f} GiB", fits=False)
    smallest = estimate(work, "nf4", 1, True)
    raise MemoryPlanError(
        f"does not fit {gpu.name} ({gpu.total_gib:.1f} GiB): even QLoRA (NF4) with gradient checkpointing and a "
        f"micro-batch of 1 needs about {smallest.total / GIB:.1f} GiB ({smallest.to_gib()}); use a larger GPU",
        smallest,
    )


def current_gpu() -> GpuMemory:
    """The first CUDA device's name and total memory (torch)."""
    import torch

    if not torch.cuda.is_available():
        raise MemoryPlanError("no CUDA device: memory placement applies to GPU training only")
    props = torch.cuda.get_device_properties(0)
    return GpuMemory(props.name, int(props.total_memory))
