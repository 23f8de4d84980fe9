"""A vision-language model's architecture as numbers: its shape read from a ``config.json`` dict, every linear
layer it contains (with the module path transformers gives it), and its parameter counts.

Memory placement (`placement.py`) and the FLOP count (`flops.py`) both start here, and nothing is hard-coded per
profile: a profile's base model names a published config (`published_models.py`) or a local folder's
``config.json``, and everything else is computed.
The layout follows transformers 5.24: `Qwen3VLForConditionalGeneration` (Qwen3-VL) and
`Qwen3_5ForConditionalGeneration` (Qwen3.5: three Gated DeltaNet layers to one gated full-attention layer, no
deepstack). Qwen3.5's multi-token-prediction head (``mtp.*``) is not loaded by transformers and is not counted.
`edugraph_pipeline_tests/training/test_architecture.py` checks the counts and module paths against the models
transformers builds on the meta device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FAMILIES = ("qwen3_vl", "qwen3_5")
FULL_ATTENTION = "full_attention"
LINEAR_ATTENTION = "linear_attention"  # Gated DeltaNet (Qwen3.5)
TEXT, VISION, MERGER = "text", "vision", "merger"  # where a linear runs: per text token, per patch, per merged patch
TEXT_PREFIX = "model.language_model.layers"
VISION_PREFIX = "model.visual"


@dataclass(frozen=True)
class TextShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tie_word_embeddings: bool
    layer_types: tuple[str, ...]
    attention_output_gate: bool  # Qwen3.5: q_proj also yields a sigmoid gate for the attention output (2x width)
    linear_key_heads: int = 0  # Gated DeltaNet layers (Qwen3.5 only)
    linear_value_heads: int = 0
    linear_key_head_dim: int = 0
    linear_value_head_dim: int = 0
    linear_conv_kernel: int = 0

    @property
    def query_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_key_width(self) -> int:
        return self.linear_key_heads * self.linear_key_head_dim

    @property
    def linear_value_width(self) -> int:
        return self.linear_value_heads * self.linear_value_head_dim

    @property
    def linear_conv_width(self) -> int:  # q, k and v go through one depthwise causal convolution
        return 2 * self.linear_key_width + self.linear_value_width


@dataclass(frozen=True)
class VisionShape:
    depth: int
    hidden: int
    intermediate: int
    heads: int
    patch_size: int
    temporal_patch_size: int
    merge_size: int  # spatial_merge_size: merge_size**2 patches make one text token
    out_hidden: int
    in_channels: int
    num_position_embeddings: int
    deepstack_taps: int  # Qwen3-VL: extra mergers feeding intermediate vision features into the decoder

    @property
    def patch_inputs(self) -> int:  # values in one patch: channels x frames x pixels
        return self.in_channels * self.temporal_patch_size * self.patch_size**2

    @property
    def patches_per_token(self) -> int:
        return self.merge_size**2


@dataclass(frozen=True)
class Architecture:
    family: str  # "qwen3_vl" or "qwen3_5"
    text: TextShape
    vision: VisionShape


@dataclass(frozen=True)
class Linear:
    """One `nn.Linear` of the model: where it runs and which tensor it reads (`reads`: linears reading the same
    tensor share it, which matters for the activations LoRA keeps)."""

    path: str  # the module path transformers gives it, e.g. model.language_model.layers.3.self_attn.q_proj
    component: str  # TEXT (once per text token), VISION (once per patch) or MERGER (once per merged patch)
    in_features: int
    out_features: int
    bias: bool
    reads: str  # the input tensor's name within its block

    @property
    def weights(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


class ArchitectureError(ValueError):
    """A config.json lacks a field the architecture needs, or has a family this module does not know."""


def _get(section: dict, name: str, where: str):
    if name not in section:
        raise ArchitectureError(f"config.json: {where}.{name} is missing (needed to size the model)")
    return section[name]


def from_config(config: dict) -> Architecture:
    """The architecture of a ``config.json`` dict (Qwen3-VL or Qwen3.5)."""
    family = config.get("model_type")
    if family not in FAMILIES:
        raise ArchitectureError(f"config.json: model_type {family!r}: expected one of {FAMILIES}")
    text, vision = (_get(config, name, "<top>") for name in ("text_config", "vision_config"))
    layers = int(_get(text, "num_hidden_layers", "text_config"))
    tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings"))
    if tied is None:
        raise ArchitectureError("config.json: tie_word_embeddings is missing (top level and text_config)")
    hybrid = {}
    if family == "qwen3_5":
        layer_types = text.get("layer_types")
        if layer_types is None:  # transformers' rule: every full_attention_interval-th layer is full attention
            interval = int(text.get("full_attention_interval", 4))
            layer_types = [FULL_ATTENTION if (i + 1) % interval == 0 else LINEAR_ATTENTION for i in range(layers)]
        names = ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                 "linear_conv_kernel_dim")
        fields = ("linear_key_heads", "linear_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                  "linear_conv_kernel")
        hybrid = {field: int(_get(text, name, "text_config")) for field, name in zip(fields, names)}
    else:
        layer_types = [FULL_ATTENTION] * layers
    if len(layer_types) != layers or set(layer_types) - {FULL_ATTENTION, LINEAR_ATTENTION}:
        raise ArchitectureError(
            f"config.json: text_config.layer_types must list {layers} entries of {FULL_ATTENTION!r} or "
            f"{LINEAR_ATTENTION!r}, got {layer_types!r}"
        )
    shape = TextShape(
        hidden=int(_get(text, "hidden_size", "text_config")),
        layers=layers,
        heads=int(_get(text, "num_attention_heads", "text_config")),
        kv_heads=int(_get(text, "num_key_value_heads", "text_config")),
        head_dim=int(_get(text, "head_dim", "text_config")),
        intermediate=int(_get(text, "intermediate_size", "text_config")),
        vocab=int(_get(text, "vocab_size", "text_config")),
        tie_word_embeddings=bool(tied),
        layer_types=tuple(layer_types),
        attention_output_gate=family == "qwen3_5",  # transformers 5.24 always builds Qwen3.5's gated q_proj
        **hybrid,
    )
    deepstack = _get(vision, "deepstack_visual_indexes", "vision_config") if family == "qwen3_vl" else []
    seeing = VisionShape(
        depth=int(_get(vision, "depth", "vision_config")),
        hidden=int(_get(vision, "hidden_size", "vision_config")),
        intermediate=int(_get(vision, "intermediate_size", "vision_config")),
        heads=int(_get(vision, "num_heads", "vision_config")),
        patch_size=int(_get(vision, "patch_size", "vision_config")),
        temporal_patch_size=int(_get(vision, "temporal_patch_size", "vision_config")),
        merge_size=int(_get(vision, "spatial_merge_size", "vision_config")),
        out_hidden=int(_get(vision, "out_hidden_size", "vision_config")),
        in_channels=int(vision.get("in_channels", 3)),
        num_position_embeddings=int(_get(vision, "num_position_embeddings", "vision_config")),
        deepstack_taps=len(deepstack or []),
    )
    return Architecture(family, shape, seeing)


def linears(arch: Architecture) -> list[Linear]:
    """Every linear layer of the model except the output head (LoRA's ``all-linear`` leaves it out too)."""
    t, v = arch.text, arch.vision
    out: list[Linear] = []
    for i, kind in enumerate(t.layer_types):
        layer = f"{TEXT_PREFIX}.{i}"
        if kind == FULL_ATTENTION:
            q_out = t.query_width * (2 if t.attention_output_gate else 1)
            out += [
                Linear(f"{layer}.self_attn.q_proj", TEXT, t.hidden, q_out, False, "attention_input"),
                Linear(f"{layer}.self_attn.k_proj", TEXT, t.hidden, t.kv_width, False, "attention_input"),
                Linear(f"{layer}.self_attn.v_proj", TEXT, t.hidden, t.kv_width, False, "attention_input"),
                Linear(f"{layer}.self_attn.o_proj", TEXT, t.query_width, t.hidden, False, "attention_output"),
            ]
        else:
            inputs = {"in_proj_qkv": t.linear_conv_width, "in_proj_z": t.linear_value_width,
                      "in_proj_b": t.linear_value_heads, "in_proj_a": t.linear_value_heads}
            out += [Linear(f"{layer}.linear_attn.{name}", TEXT, t.hidden, width, False, "attention_input")
                    for name, width in inputs.items()]
            out.append(Linear(f"{layer}.linear_attn.out_proj", TEXT, t.linear_value_width, t.hidden, False,
                              "attention_output"))
        out += [
            Linear(f"{layer}.mlp.gate_proj", TEXT, t.hidden, t.intermediate, False, "mlp_input"),
            Linear(f"{layer}.mlp.up_proj", TEXT, t.hidden, t.intermediate, False, "mlp_input"),
            Linear(f"{layer}.mlp.down_proj", TEXT, t.intermediate, t.hidden, False, "mlp_product"),
        ]
    for i in range(v.depth):
        block = f"{VISION_PREFIX}.blocks.{i}"
        out += [
            Linear(f"{block}.attn.qkv", VISION, v.hidden, 3 * v.hidden, True, "attention_input"),
            Linear(f"{block}.attn.proj", VISION, v.hidden, v.hidden, True, "attention_output"),
            Linear(f"{block}.mlp.linear_fc1", VISION, v.hidden, v.intermediate, True, "mlp_input"),
            Linear(f"{block}.mlp.linear_fc2", VISION, v.intermediate, v.hidden, True, "mlp_product"),
        ]
    merged = v.hidden * v.patches_per_token
    mergers = [f"{VISION_PREFIX}.merger"]
    mergers += [f"{VISION_PREFIX}.deepstack_merger_list.{j}" for j in range(v.deepstack_taps)]
    for merger in mergers:
        out += [
            Linear(f"{merger}.linear_fc1", MERGER, merged, merged, True, f"{merger}.input"),
            Linear(f"{merger}.linear_fc2", MERGER, merged, v.out_hidden, True, f"{merger}.hidden"),
        ]
    return out


ALL_LINEAR = "all-linear"


def lora_targets(arch: Architecture, target_modules) -> list[Linear]:
    """The linears a LoRA with PEFT's `target_modules` adapts: ``all-linear`` (every linear but the output head), a
    regular expression matched against the whole module path, or a list of names matched against its end."""
    every = linears(arch)
    if target_modules == ALL_LINEAR:
        return every
    if isinstance(target_modules, str):
        pattern = re.compile(target_modules)
        return [lin for lin in every if pattern.fullmatch(lin.path)]
    names = list(target_modules)
    return [lin for lin in every if any(lin.path == n or lin.path.endswith("." + n) for n in names)]


def lora_parameters(targets: list[Linear], r: int) -> int:
    return sum(r * (lin.in_features + lin.out_features) for lin in targets)


@dataclass(frozen=True)
class ParameterCounts:
    text_linear: int  # the decoder's linear weights: what QLoRA stores in NF4
    text_other: int  # embeddings, norms, Gated DeltaNet's convolution and decay parameters
    lm_head: int  # 0 when tied to the embeddings
    vision_linear: int  # vision blocks and mergers (biases included)
    vision_other: int  # patch embedding, position embedding, norms

    @property
    def total(self) -> int:
        return self.text_linear + self.text_other + self.lm_head + self.vision_linear + self.vision_other

    @property
    def vision(self) -> int:
        return self.vision_linear + self.vision_other


def parameter_counts(arch: Architecture) -> ParameterCounts:
    t, v = arch.text, arch.vision
    layer_linears = linears(arch)
    text_linear = sum(lin.weights for lin in layer_linears if lin.component == TEXT)
    vision_linear = sum(lin.weights for lin in layer_linears if lin.component != TEXT)
    text_other = t.vocab * t.hidden + t.hidden  # embeddings, final norm
    for kind in t.layer_types:
        text_other += 2 * t.hidden  # input and post-attention RMSNorm
        if kind == FULL_ATTENTION:
            text_other += 2 * t.head_dim  # q_norm, k_norm
        else:  # depthwise conv (no bias), dt_bias, A_log, gated RMSNorm over a value head
            text_other += t.linear_conv_width * t.linear_conv_kernel + 2 * t.linear_value_heads
            text_other += t.linear_value_head_dim
    vision_other = v.patch_inputs * v.hidden + v.hidden + v.num_position_embeddings * v.hidden
    vision_other += v.depth * 2 * 2 * v.hidden  # two LayerNorms (weight + bias) per block
    vision_other += 2 * v.hidden + v.deepstack_taps * 2 * v.hidden * v.patches_per_token  # merger LayerNorms
    lm_head = 0 if t.tie_word_embeddings else t.vocab * t.hidden
    return ParameterCounts(text_linear, text_other, lm_head, vision_linear, vision_other)
