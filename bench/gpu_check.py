"""The production shape on a GPU, in one call (issue 10): `bench/gpu_check.sh` runs this.

Builds the full-depth Qwen3-VL-4B-Instruct shape (36 text + 24 vision layers, published widths, random bf16
weights, the Hub's processor files and chat template: `edugraph_pipeline_tests.kit.hub_models`) and measures, at the
4b profile's batch, gradient accumulation, LoRA rank and pixel budget, through the training code's own loaders
(`sft._load_model`, `sft.lora_config`, `data.encode_chat` on the generation-marked template, `masked_lm_loss`):

* stage-2 optimizer-step time, tokens/s, MFU and peak memory for bf16 LoRA and for QLoRA (NF4 language model);
* `Classifier.classify` latency per worksheet image (bf16, constrained decoding).

MFU = model FLOPs per token x tokens/s / the chip's dense bf16 peak, model FLOPs per token = 6 x the text
decoder's weights + 12 x layers x attention width x sequence length (PaLM's convention) + the vision tower's 6 x
weights per patch, spread over the tokens; ``mfu_lora`` counts 4 instead of 6 (a LoRA step computes no gradients
for the frozen weights), the FLOPs the step really needs. The baseline in the same run is bf16 LoRA: QLoRA's step
time is reported as a ratio to it.

    python bench/gpu_check.py                  # on the GPU (bench/gpu_check.sh checks nvidia-smi first)
    python bench/gpu_check.py --tiny           # the same code on the CPU: 1+1 layers, a small batch (checks it)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Dense bf16 peak (no sparsity) by device-name fragment, TFLOP/s: NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "B200": 2250.0, "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0, "A10G": 125.0}


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for fragment, peak in PEAK_BF16_TFLOPS.items():  # longest fragments first where they overlap (H100 PCIe)
        if fragment in device_name:
            return peak
    return None


def flops_per_token(config, seq_len: float, patches_per_token: float, weight_factor: int) -> float:
    """Model FLOPs per text token of one training step (see the module docstring)."""
    text, vision = config.text_config, config.vision_config
    q_width = text.num_attention_heads * text.head_dim
    kv_width = text.num_key_value_heads * text.head_dim
    per_layer = text.hidden_size * (2 * q_width + 2 * kv_width) + 3 * text.hidden_size * text.intermediate_size
    decoder = text.num_hidden_layers * per_layer
    attention = 12 * text.num_hidden_layers * q_width * seq_len  # QK^T and AV, forward + backward
    v = vision.hidden_size
    vision_weights = vision.depth * (4 * v * v + 2 * v * vision.intermediate_size)
    return weight_factor * decoder + attention + weight_factor * vision_weights * patches_per_token


def small_ontology():
    from edugraph_pipeline.ontology.model import Concept, Ontology
    from edugraph_pipeline_tests.kit.synthetic import WORKSHEET_CLASSES

    names = {(dim, name) for labels in WORKSHEET_CLASSES.values() if labels for dim, ns in labels.items() for name in ns}
    concepts = {name: Concept(name, f"http://edugraph.io/edu/{name}", dim) for dim, name in sorted(names)}
    return Ontology(version="gpu-check", commit="none", concepts=concepts)


def features(processor, template, n: int, size: tuple[int, int]) -> list[dict]:
    from edugraph_pipeline.prompts import classification_messages
    from edugraph_pipeline.training.data import encode_chat
    from edugraph_pipeline_tests.kit.synthetic import WORKSHEET_CLASSES, class_answer, draw_worksheet

    rng = random.Random(0)
    names = [name for name in WORKSHEET_CLASSES if name != "photo"]
    return [
        encode_chat(processor, classification_messages(class_answer(name)), [draw_worksheet(name, rng, size)], template)
        for name in (names[i % len(names)] for i in range(n))
    ]


def measure_training(label, folder, cfg, placement, feats, steps, warmup, device) -> dict:
    import torch
    from peft import get_peft_model

    from edugraph_pipeline.training.data import FeatureCollator, masked_lm_loss
    from edugraph_pipeline.training.sft import _load_model, lora_config

    cuda = device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    load_start = time.perf_counter()
    model = get_peft_model(_load_model(str(folder), placement), lora_config(cfg))
    load_s = time.perf_counter() - load_start
    if cuda and cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lora.lr)
    collate = FeatureCollator(pad_token_id=151643)
    micro = [collate(feats[i : i + cfg.batch_size]) for i in range(0, cfg.batch_size * cfg.grad_accum, cfg.batch_size)]
    target = "cuda" if cuda else "cpu"
    micro = [{k: v.to(target) for k, v in batch.items()} for batch in micro]
    tokens_per_step = sum(int(b["attention_mask"].sum()) for b in micro)
    times = []
    for step in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for batch in micro:
            with torch.autocast(target, dtype=torch.bfloat16, enabled=cuda):
                loss = masked_lm_loss(model, batch) / len(micro)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    trainable, total = model.get_nb_trainable_parameters()
    peak = int(torch.cuda.max_memory_allocated()) if cuda else None
    del model, optimizer
    step_s = statistics.median(times)
    return {
        "variant": label,
        "load_s": round(load_s, 1),
        "step_s": step_s,
        "tokens_per_step": tokens_per_step,
        "tokens_per_s": tokens_per_step / step_s,
        "trainable_parameters": int(trainable),
        "total_parameters": int(total),
        "peak_memory_gib": round(peak / 2**30, 2) if peak is not None else None,
        "final_loss": float(loss.detach()) * len(micro),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="4b", choices=["2b", "4b", "8b"])
    parser.add_argument("--tiny", action="store_true", help="CPU: 1 text + 1 vision layer, batch 1, small images")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the chip (default: by name; "
                        "on the CPU only when given)")
    parser.add_argument("--classify-images", type=int, default=5)
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoConfig

    from edugraph_pipeline.training.chat_template import training_chat_template
    from edugraph_pipeline.training.device import Placement
    from edugraph_pipeline.training.profiles import profile, stage_config
    from edugraph_pipeline.training.sft import load_processor
    from edugraph_pipeline_tests.kit.hub_models import build_hub_model

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device (use --tiny for the CPU check)", file=sys.stderr)
        return 2
    prof = profile(args.size)
    if args.tiny:
        args.steps, args.warmup, args.classify_images = 1, 1, 1
    report: dict = {"size": args.size, "tiny": args.tiny, "torch": torch.__version__, "cuda": torch.version.cuda}
    report["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        layers = {"text_layers": 1, "vision_layers": 1} if args.tiny else {}
        folder = build_hub_model(args.size, Path(tmp) / "base", **layers)
        report["build_s"] = round(time.perf_counter() - start, 1)
        cfg = stage_config("worksheet", base_model=str(folder), dataset_path="-", output_dir=tmp, prof=prof,
                           mode="train", device=device)
        if args.tiny:
            cfg = cfg.with_(batch_size=1, grad_accum=1, max_pixels=32 * 32 * 16)
        processor = load_processor(cfg)
        template = training_chat_template(processor, str(folder))
        page = (256, 192) if args.tiny else (1024, 768)  # 768 image tokens at the 4b profile's budget
        feats = features(processor, template, cfg.batch_size * cfg.grad_accum, page)
        config = AutoConfig.from_pretrained(folder)
        image_tokens = sum(int((f["mm_token_type_ids"] == 1).sum()) for f in feats)
        seq_len = statistics.mean(len(f["input_ids"]) for f in feats)
        patches_per_token = 4 * image_tokens / sum(len(f["input_ids"]) for f in feats)
        report.update(batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, max_pixels=cfg.max_pixels,
                      lora_r=cfg.lora.r, image_tokens_per_image=image_tokens // len(feats), mean_sequence=seq_len)
        peak = peak_tflops(report["device"], args.peak_tflops) if device == "cuda" else args.peak_tflops
        report["peak_bf16_tflops"] = peak
        variants = [(("bf16" if device == "cuda" else "fp32") + " LoRA", Placement(device, False, "gpu_check"))]
        if device == "cuda":
            variants.append(("QLoRA (NF4)", Placement(device, True, "gpu_check")))
        rows = []
        for label, placement in variants:
            row = measure_training(label, folder, cfg, placement, feats, args.steps, args.warmup, device)
            for key, factor in (("mfu", 6), ("mfu_lora", 4)):
                flops = flops_per_token(config, seq_len, patches_per_token, factor)
                row[key] = round(flops * row["tokens_per_s"] / (peak * 1e12), 4) if peak else None
            rows.append(row)
        if len(rows) > 1:
            rows[1]["step_time_vs_bf16"] = round(rows[1]["step_s"] / rows[0]["step_s"], 2)
        report["training"] = rows
        report["classify"] = measure_classify(folder, device, args.classify_images, page)
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


def measure_classify(folder: Path, device: str, n: int, page: tuple[int, int]) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from edugraph_pipeline.inference.classifier import Classifier, answer_spec
    from edugraph_pipeline.inference.transformers_backend import TransformersBackend
    from edugraph_pipeline_tests.kit.synthetic import draw_worksheet

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype).to(device).eval()
    processor = AutoProcessor.from_pretrained(folder)
    processor.image_processor.size = {"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 768}
    ontology = small_ontology()
    classifier = Classifier(TransformersBackend(model, processor, answer_spec(ontology)), ontology)
    rng = random.Random(1)
    images = [draw_worksheet("add10", rng, page) for _ in range(n + 1)]
    classifier.classify(images[:1])  # warm-up
    latencies = []
    for image in images[1:]:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        classifier.classify([image])
        if device == "cuda":
            torch.cuda.synchronize()
        latencies.append(time.perf_counter() - start)
    return {"images": n, "median_s": statistics.median(latencies), "max_s": max(latencies)}


if __name__ == "__main__":
    raise SystemExit(main())
