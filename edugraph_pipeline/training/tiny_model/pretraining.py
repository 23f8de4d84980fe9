"""Pretraining of the tiny base: every parameter trained briefly on generated captioned pictures, so that the LoRA
stages start from a base that has looked at images."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edugraph_pipeline.training.tiny_model.model import SPEC_FILE, build_tiny_model
from edugraph_pipeline.training.tiny_model.pictures import generate_picture

log = logging.getLogger(__name__)

DESCRIBE_PROMPT = "Describe the picture."


@dataclass(frozen=True)
class PretrainConfig:
    # The caption loss falls from ~12 to 0.47 in 200 steps (0.32 after 400, bench/pipeline_time.py's run of
    # issue 26): half the steps keep most of what pretraining gives stage 2, at half its time.
    steps: int = 200
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 20
    n_images: int = 400
    image_size: int = 224
    seed: int = 0
    log_every: int = 50


def pretrain_tiny_model(base: str | Path, out: str | Path, cfg: PretrainConfig = PretrainConfig(), log_fn=None) -> dict:
    """Full-parameter training of the tiny model on generated captioned pictures; saves model + processor to `out`.

    Returns metrics (steps, wall time, final/initial loss, loss history).
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from edugraph_pipeline.training.data import FeatureCollator, encode_chat, masked_lm_loss

    log_fn = log_fn or log.info
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    processor = AutoProcessor.from_pretrained(str(base))
    model = AutoModelForImageTextToText.from_pretrained(str(base), dtype=torch.float32)
    model.train()
    features = []
    for _ in range(cfg.n_images):
        image, caption = generate_picture(rng, cfg.image_size)
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": DESCRIBE_PROMPT}]},
            {"role": "assistant", "content": [{"type": "text", "text": caption}]},
        ]
        features.append(encode_chat(processor, messages, [image]))
    collate = FeatureCollator(pad_token_id=processor.tokenizer.pad_token_id)
    # Fused: one pass per step over every parameter, most of them the 151k x 128 embedding. Clipping and the update
    # took 0.56 s of CPU per step with the default implementation, 0.16 s fused (of ~2 s per step; same losses).
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0, fused=True)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    history: list[tuple[int, float]] = []
    order: list[int] = []
    start = time.perf_counter()
    running = 0.0
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:
            fresh = list(range(len(features)))
            rng.shuffle(fresh)
            order.extend(fresh)
        batch = collate([features[i] for i in order[: cfg.batch_size]])
        del order[: cfg.batch_size]
        loss = masked_lm_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        running += loss.item()
        if (step + 1) % cfg.log_every == 0 or step == cfg.steps - 1:
            n = (step % cfg.log_every) + 1
            history.append((step + 1, running / n))
            log_fn(f"pretrain step {step + 1}/{cfg.steps} loss {running / n:.4f}")
            running = 0.0
    wall = time.perf_counter() - start
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    for extra in (SPEC_FILE,):
        if (Path(base) / extra).exists():
            (out / extra).write_text((Path(base) / extra).read_text(encoding="utf-8"), encoding="utf-8")
    metrics = {
        "steps": cfg.steps,
        "wall_time_s": wall,
        "seconds_per_step": wall / max(1, cfg.steps),
        "loss_history": history,
        "pretrain_config": asdict(cfg),
    }
    (out / "pretraining.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


def pretrain_config(mode: str) -> PretrainConfig:
    """The pretraining of run mode `mode` (``test``: a few steps, checks the path)."""
    return PretrainConfig() if mode == "train" else PretrainConfig(steps=4, batch_size=2, n_images=8, log_every=2)


def build_pretrained_tiny_model(out: str | Path, mode: str = "train", log_fn=None) -> dict:
    """Build + pretrain in one go (``mode='test'``: a few steps). Returns the pretraining metrics."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        raw = build_tiny_model(Path(tmp) / "raw")
        return pretrain_tiny_model(raw, out, pretrain_config(mode), log_fn=log_fn)

