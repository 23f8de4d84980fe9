"""Which linears a LoRA stage adapts: the choice a profile (or a run) makes, turned into PEFT's `target_modules`.

* ``language``: the language model's linears only; the vision tower and the projector (merger) stay frozen, so the
  merged model's vision weights are the base's, byte for byte, and so is the ``mmproj`` the GGUF export converts
  from them. Upstream and its successor train this way; LLaMA-Factory and ms-swift freeze the vision tower by
  default too.
* ``all-linear``: PEFT's every linear but the output head: the language model, the vision tower and the merger.

Stage 1 (text only: no image reaches the vision tower, so an adapter there would learn nothing) always adapts the
language model. The language model's linears, by family: Qwen3-VL's attention (``q/k/v/o_proj``) and SwiGLU
(``gate/up/down_proj``); Qwen3.5 adds its Gated DeltaNet layers' ``in_proj_qkv``, ``in_proj_z`` and ``out_proj``.
Their ``in_proj_a`` / ``in_proj_b`` are left out on purpose: they map the hidden state to one decay / gate value
per value head (32 or 48 outputs), so a rank-64 adapter there would be wider than the weight it adapts
(64 x (2560 + 32) parameters beside a 2560 x 32 weight on the 4B) and no low-rank update at all.
"""

from __future__ import annotations

LANGUAGE = "language"
ALL_LINEAR = "all-linear"
CHOICES = (LANGUAGE, ALL_LINEAR)
LORA_TARGETS_ENV = "EDUGRAPH_LORA_TARGETS"  # the setting that chooses (read only by defs/training/run_config.py)

LANGUAGE_MODEL_PROJECTIONS = (
    "q_proj", "k_proj", "v_proj", "o_proj",  # attention (Qwen3-VL; Qwen3.5's full-attention layers)
    "gate_proj", "up_proj", "down_proj",  # SwiGLU
    "in_proj_qkv", "in_proj_z", "out_proj",  # Qwen3.5's Gated DeltaNet layers
)
# A regular expression over the whole module path (PEFT full-matches a string target_modules).
LANGUAGE_MODEL_LINEAR = r".*language_model.*\.(" + "|".join(LANGUAGE_MODEL_PROJECTIONS) + ")"


def check_choice(choice: str, where: str = LORA_TARGETS_ENV) -> str:
    if choice not in CHOICES:
        raise ValueError(f"{where}={choice!r}: expected one of {', '.join(CHOICES)}")
    return choice


def target_modules(stage: str, choice: str) -> str:
    """PEFT's `target_modules` for a stage (``knowledge``: always the language model) and a choice."""
    check_choice(choice)
    if stage == "knowledge" or choice == LANGUAGE:
        return LANGUAGE_MODEL_LINEAR
    return ALL_LINEAR
