"""Proposed model profiles for the Qwen3.5 line (4B, 9B, 27B), upstream's successor to Qwen3-VL: not yet in
`config.PROFILES` (which `EDUGRAPH_MODEL` picks from) until the training code is wired for them.

They mirror the Qwen3-VL profiles of similar size (4B like ``4b``; 9B like ``8b``; 27B with the 8B's ranks and a
micro-batch of 1): the same pixel budget (Qwen3.5 also turns 32 x 32 pixels into one token: 16-pixel patches
merged 2 x 2) and the same sequence length. The micro-batch and gradient checkpointing given here are the
defaults the memory placement (`placement.plan`) starts from; it keeps their product, the effective batch.
Known gaps before they can train (docs/qwen3_5.md): `sft.LANGUAGE_MODEL_LINEAR` (stage 1's targets) names no
Gated DeltaNet projection, so stage 1 would adapt only every fourth attention layer; transformers' pure-torch
Gated DeltaNet kernel is slow without the `flash-linear-attention` kernels.
"""

from __future__ import annotations

from edugraph_pipeline.training.profiles import LoraSettings, ModelProfile

QWEN3_5_PROFILES: dict[str, ModelProfile] = {
    "qwen3.5-4b": ModelProfile(
        name="qwen3.5-4b",
        base_model="Qwen/Qwen3.5-4B",
        knowledge=LoraSettings(r=8, alpha=16, dropout=0.05, lr=2e-4, epochs=2),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=2e-4, epochs=2),
        batch_size=2,
        grad_accum=4,
        max_pixels=32 * 32 * 768,
    ),
    "qwen3.5-9b": ModelProfile(
        name="qwen3.5-9b",
        base_model="Qwen/Qwen3.5-9B",
        knowledge=LoraSettings(r=16, alpha=32, dropout=0.1, lr=2e-4, epochs=3),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=2e-4, epochs=3),
        batch_size=1,
        grad_accum=8,
        max_pixels=32 * 32 * 768,
    ),
    "qwen3.5-27b": ModelProfile(
        name="qwen3.5-27b",
        base_model="Qwen/Qwen3.5-27B",
        knowledge=LoraSettings(r=16, alpha=32, dropout=0.1, lr=1e-4, epochs=2),
        worksheet=LoraSettings(r=64, alpha=128, dropout=0.1, lr=1e-4, epochs=2),
        batch_size=1,
        grad_accum=8,
        max_pixels=32 * 32 * 768,
    ),
}
