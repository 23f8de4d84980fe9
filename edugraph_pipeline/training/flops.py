"""FLOPs of one LoRA training sample, counted from the architecture: what MFU and HFU divide by.

A multiply-add is 2 FLOPs; element-wise work (norms, activations, softmax, RoPE, the loss) is not counted, as
usual. Forward FLOPs per sample, by part:

* ``text_linear``: every decoder linear, 2 x in x out per token of the sequence (image tokens included);
* ``text_attention``: the score and context matmuls of the full-attention layers, causal: query t attends t keys,
  2 x 2 x query width x t, summed over the sequence: 2 x query width x s x (s + 1) per layer (what a causal
  flash/SDPA kernel computes; PaLM's convention counts the whole square, about twice this);
* ``text_linear_attention`` (Qwen3.5's Gated DeltaNet): the depthwise causal convolution (2 x kernel x width per
  token) and the delta rule in its recurrent form, 3 matrix-vector products with the key x value state per value
  head and token (6 x key dim x value dim); the chunked kernel does somewhat more;
* ``lm_head``: 2 x hidden x vocab per position where logits are computed (label positions only when the training
  computes the head there, as `masked_lm_loss` does);
* ``vision_patch_embed``, ``vision_linear``, ``vision_attention``: the patch projection, the blocks' linears per
  patch, and bidirectional attention within each image, 2 x 2 x width x P**2 per block for P patches;
* ``merger``: the patch merger and Qwen3-VL's deepstack mergers, per merged patch;
* ``lora``: 2 x r x (in + out) per targeted linear and application.

A training step's model FLOPs (``model``, MFU's numerator) count what a LoRA step needs: frozen linears forward
plus the backward pass for activation gradients only (2 + 2: "4N" instead of full fine-tuning's 6N), attention
and the Gated DeltaNet core forward plus gradients for queries, keys and values (1 + 2), the adapters forward
plus activation and weight gradients (1 + 2). Parts no gradient flows through run forward only: the vision tower
when no adapter sits in it or its mergers, and the patch embedding always. Hardware FLOPs (``hardware``, HFU's
numerator) add what gradient checkpointing recomputes: one more forward of every checkpointed layer that runs
backward (decoder layers, vision blocks, with their adapters; not the mergers or the head): frozen linears at 6N.

Exactly as autograd does it: the first vision block, and the first decoder layer when no gradient reaches the
embeddings (no image, or a frozen vision tower), compute no input gradient for the linears reading the layer's
input, frozen or adapted (it needs none). Under gradient checkpointing transformers makes the token embeddings'
output require gradients (`enable_input_require_grads`), so the first decoder layer computes them after all; HFU
counts them. `edugraph_pipeline_tests/training/test_flops.py` checks the linears' share against torch's FLOP
counter on a real LoRA forward + backward of the tiny model: equal without checkpointing, within 0.01 % with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edugraph_pipeline.training.architecture import (
    FULL_ATTENTION,
    MERGER,
    TEXT,
    TEXT_PREFIX,
    VISION,
    VISION_PREFIX,
    Architecture,
    linears,
    lora_targets,
)

CHECKPOINTED = ("text_linear", "text_attention", "text_linear_attention", "vision_linear", "vision_attention")


@dataclass(frozen=True)
class SampleShape:
    """One training sample as the model sees it."""

    sequence: int  # decoder positions, image tokens included
    logit_positions: int  # positions the output head runs on
    images: int = 0
    patches_per_image: int = 0  # before merging (merge_size**2 patches per image token)

    @property
    def patches(self) -> int:
        return self.images * self.patches_per_image


@dataclass(frozen=True)
class SampleFlops:
    forward: dict[str, float]  # forward FLOPs per part (keys: see the module docstring)
    model: float  # a training step's FLOPs for this sample, as a LoRA step needs them
    hardware: float  # model + what gradient checkpointing recomputes
    backward_parts: tuple[str, ...] = ()  # the parts gradients flow through


def forward_flops(arch: Architecture, shape: SampleShape, target_modules, r: int) -> dict[str, float]:
    t, v = arch.text, arch.vision
    s = shape.sequence
    merged = shape.patches / v.patches_per_token
    per_application = {TEXT: s, VISION: shape.patches, MERGER: merged}
    parts = dict.fromkeys(
        ("text_linear", "text_attention", "text_linear_attention", "lm_head", "vision_patch_embed",
         "vision_linear", "vision_attention", "merger", "lora"), 0.0)
    for lin in linears(arch):
        key = {TEXT: "text_linear", VISION: "vision_linear", MERGER: "merger"}[lin.component]
        parts[key] += 2.0 * lin.in_features * lin.out_features * per_application[lin.component]
    full = sum(kind == FULL_ATTENTION for kind in t.layer_types)
    parts["text_attention"] = full * 2.0 * t.query_width * s * (s + 1)
    gated_delta = t.layers - full
    per_token = 2 * t.linear_conv_kernel * t.linear_conv_width
    per_token += 6 * t.linear_key_head_dim * t.linear_value_head_dim * t.linear_value_heads
    parts["text_linear_attention"] = gated_delta * float(per_token) * s
    parts["lm_head"] = 2.0 * t.hidden * t.vocab * shape.logit_positions
    parts["vision_patch_embed"] = 2.0 * v.patch_inputs * v.hidden * shape.patches
    parts["vision_attention"] = v.depth * 4.0 * v.hidden * shape.images * shape.patches_per_image**2
    parts["lora"] = sum(
        2.0 * r * (lin.in_features + lin.out_features) * per_application[lin.component]
        for lin in lora_targets(arch, target_modules)
    )
    return parts


def sample_flops(arch: Architecture, shape: SampleShape, target_modules, r: int,
                 gradient_checkpointing: bool) -> SampleFlops:
    """Forward, model (MFU) and hardware (HFU) FLOPs of one sample of a LoRA training step."""
    forward = forward_flops(arch, shape, target_modules, r)
    components = {lin.component for lin in lora_targets(arch, target_modules)}
    vision_backward = bool(components & {VISION, MERGER})
    backward = ["text_linear", "text_attention", "text_linear_attention", "lm_head", "lora"]
    if vision_backward:
        backward += ["vision_linear", "vision_attention", "merger"]
    cores = ("text_attention", "text_linear_attention", "vision_attention")
    model = 0.0
    for part, flops in forward.items():
        if part == "lora" or (part in cores and part in backward):
            model += 3 * flops  # forward + input gradients (+ weight gradients for the adapters)
        elif part in backward:
            model += 2 * flops  # frozen: forward + activation gradients
        else:
            model += flops
    first_text = not (vision_backward and shape.patches)
    skipped_text = _unneeded_input_gradients(arch, shape, target_modules, r, first_text, False)
    skipped_vision = _unneeded_input_gradients(arch, shape, target_modules, r, False,
                                               vision_backward and bool(shape.patches))
    model -= skipped_text + skipped_vision
    recomputed = 0.0
    if gradient_checkpointing:
        recomputed = skipped_text  # transformers makes the token embeddings require gradients under checkpointing
        recomputed += sum(forward[part] for part in CHECKPOINTED if part in backward)
        recomputed += _lora_in(arch, shape, target_modules, r, {TEXT} | ({VISION} if vision_backward else set()))
    return SampleFlops(forward, model, model + recomputed, tuple(backward))


def _unneeded_input_gradients(arch: Architecture, shape: SampleShape, target_modules, r: int, first_text: bool,
                              first_vision: bool) -> float:
    """The input-gradient FLOPs of the linears reading the first layer's input, where that input needs none."""
    firsts = {f"{TEXT_PREFIX}.0.": shape.sequence} if first_text else {}
    if first_vision:
        firsts[f"{VISION_PREFIX}.blocks.0."] = shape.patches
    adapted = {lin.path for lin in lora_targets(arch, target_modules)}
    saved = 0.0
    for lin in linears(arch):
        count = next((n for prefix, n in firsts.items() if lin.path.startswith(prefix)), 0)
        if count and lin.reads == "attention_input":
            saved += 2.0 * lin.in_features * lin.out_features * count  # the frozen weight's input gradient
            if lin.path in adapted:
                saved += 2.0 * r * lin.in_features * count  # lora_A's input gradient
    return saved


def _lora_in(arch: Architecture, shape: SampleShape, target_modules, r: int, components: set[str]) -> float:
    """Forward FLOPs of the adapters inside checkpointed layers (recomputed with them)."""
    count = {TEXT: shape.sequence, VISION: shape.patches}
    return sum(
        2.0 * r * (lin.in_features + lin.out_features) * count[lin.component]
        for lin in lora_targets(arch, target_modules)
        if lin.component in components
    )
