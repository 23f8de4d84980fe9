"""The production shape on a GPU, honestly counted, in one call (issue 25): `bench/gpu_check.sh` runs this.

Builds the full-depth Qwen3-VL-4B-Instruct shape (36 text + 24 vision layers, published widths, random bf16
weights, the Hub's processor files and chat template: `edugraph_pipeline_tests.kit.hub_models`) and measures stage-2
LoRA steps through the training code's own loaders (`sft.load_model`, `sft.lora_config`, `data.encode_chat`,
`masked_lm_loss`) for, in this order (rows that a timeout cuts off are the least important):

1. the memory placement's choice for this GPU (`training.placement.plan`: precision, micro-batch, checkpointing);
2. the profile as configured before placement existed: QLoRA (NF4), micro-batch 2 x 4, gradient checkpointing;
3. bf16 LoRA at that same batch with checkpointing (what NF4 costs, at equal batch);

then `Classifier.classify` latency per worksheet image. Each row is appended to the JSONL file (``--jsonl``) the
moment it is finished, so a timeout loses only the rows not yet reached; ``--out`` gets the whole report at the end
and the last stdout line is a one-line summary.

FLOPs come from `training.flops.sample_flops` per sample (its docstring says exactly what is counted): the text
decoder's linears and causal attention, the vision tower's linears and attention, the mergers, the output head on
label positions, the adapters. MFU uses the model FLOPs of a LoRA step (frozen weights: forward + activation
gradients, "4N"; adapters and attention: forward + gradients); HFU adds what gradient checkpointing recomputes
(6N-equivalent for frozen linears). Both are given against the data-sheet dense bf16 peak and against a measured
ceiling: the best of a short series of large bf16 `torch.matmul`s on this GPU. Padding positions are not counted.
Every row records the placement estimate next to the measured allocated and reserved peaks (calibration), and the
environment row the driver, library versions and attention implementation.

    python bench/gpu_check.py                  # on the GPU (bench/gpu_check.sh checks nvidia-smi first)
    python bench/gpu_check.py --tiny           # the same code on the CPU: 1+1 layers, a small batch (checks it)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Dense bf16 peak (no sparsity) by device-name fragment, TFLOP/s: NVIDIA's data sheets (SXM where both exist).
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "B200": 2250.0, "A100": 312.0,
                    "L40S": 362.0, "L4": 121.0, "A10G": 125.0}
LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "trl", "flash-attn", "kernels",
             "flash-linear-attention")
GIB = 2**30


class Rows:
    """Appends each row to a JSONL file as soon as it exists (flushed and synced) and keeps them for the report."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.rows: list[dict] = []
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")

    def add(self, kind: str, **row) -> dict:
        row = {"row": kind, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **row}
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        if self.path:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        return row


def peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    for fragment, peak in PEAK_BF16_TFLOPS.items():  # longer fragments first where they overlap (H100 PCIe)
        if fragment in device_name:
            return peak
    return None


def environment(device: str) -> dict:
    import torch

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    env = {"device": "cpu", "torch_cuda": torch.version.cuda, "libraries": versions, "python": sys.version.split()[0]}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(device=props.name, total_memory_gib=round(props.total_memory / GIB, 2),
                   compute_capability=f"{props.major}.{props.minor}", driver=_driver())
    return env


def _driver() -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    done = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                          text=True, timeout=30, check=False)
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def matmul_ceiling(device: str) -> dict:
    """The best TFLOP/s of large bf16 matmuls (fp32 on the CPU): what this chip really delivers on dense GEMM."""
    import torch

    n, repeats, dtype = (8192, 30, torch.bfloat16) if device == "cuda" else (1024, 3, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(3):
        for _ in range(2):  # warm-up
            torch.matmul(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            torch.matmul(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - start) / repeats)
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "tflops": round(2 * n**3 / best / 1e12, 3)}


def legacy_flops_per_token(config, seq_len: float, patches_per_token: float, weight_factor: int) -> float:
    """The previous gpu_check's count (kept for comparison): 6 (or 4) x the decoder's attention and MLP weights,
    PaLM's 12 x layers x width x sequence, the vision blocks' weights per patch; no vision attention, mergers or
    adapters."""
    text, vision = config.text_config, config.vision_config
    q_width, kv_width = text.num_attention_heads * text.head_dim, text.num_key_value_heads * text.head_dim
    per_layer = text.hidden_size * (2 * q_width + 2 * kv_width) + 3 * text.hidden_size * text.intermediate_size
    v = vision.hidden_size
    vision_weights = vision.depth * (4 * v * v + 2 * v * vision.intermediate_size)
    return (weight_factor * text.num_hidden_layers * per_layer + 12 * text.num_hidden_layers * q_width * seq_len
            + weight_factor * vision_weights * patches_per_token)


def small_ontology():
    from edugraph_pipeline.ontology.model import Concept, Ontology
    from edugraph_pipeline_tests.kit.synthetic import WORKSHEET_CLASSES

    names = {(dim, name) for labels in WORKSHEET_CLASSES.values() if labels
             for dim, ns in labels.items() for name in ns}
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


def sample_shape(feature: dict):
    from edugraph_pipeline.training.flops import SampleShape

    labels = feature["labels"]
    grid = feature["image_grid_thw"]
    return SampleShape(sequence=len(feature["input_ids"]), logit_positions=int((labels[1:] != -100).sum()),
                       images=int(grid.shape[0]), patches_per_image=int(grid[0].prod()))


def measure_training(variant: dict, folder, cfg, feats, steps, warmup, device, arch, pad_token_id: int) -> dict:
    """One variant's median optimizer-step time, throughput, FLOPs and memory (OOM is a result, not a crash)."""
    import torch
    from peft import get_peft_model

    from edugraph_pipeline.training.data import FeatureCollator, masked_lm_loss
    from edugraph_pipeline.training.flops import sample_flops
    from edugraph_pipeline.training.placement import Workload, estimate
    from edugraph_pipeline.training.sft import load_model, lora_config

    cuda = device == "cuda"
    micro, checkpointing, nf4 = variant["micro_batch"], variant["gradient_checkpointing"], variant["precision"] == "nf4"
    shapes = [sample_shape(f) for f in feats]
    targets = lora_config(cfg).target_modules
    padded = max(shapes, key=lambda s: s.sequence)
    work = Workload(arch, targets, cfg.lora.r, cfg.lora.dropout, micro, len(feats) // micro, padded)
    row = dict(variant, grad_accum=len(feats) // micro, estimate_gib=estimate(
        work, "nf4" if nf4 else "bf16", micro, checkpointing).to_gib())
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = optimizer = None
    try:
        load_start = time.perf_counter()
        model = get_peft_model(load_model(str(folder), device, nf4), lora_config(cfg))
        row["load_s"] = round(time.perf_counter() - load_start, 1)
        row["attn_implementation"] = {"text": model.config.text_config._attn_implementation,
                                      "vision": model.config.vision_config._attn_implementation}
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lora.lr)
        collate = FeatureCollator(pad_token_id=pad_token_id)
        batches = [collate(feats[i : i + micro]) for i in range(0, len(feats), micro)]
        batches = [{k: v.to(device) for k, v in batch.items()} for batch in batches]
        times = []
        for step in range(warmup + steps):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            for batch in batches:
                with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
                    loss = masked_lm_loss(model, batch) / len(batches)
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            if step >= warmup:
                times.append(time.perf_counter() - start)
        trainable, total = model.get_nb_trainable_parameters()
        tokens = sum(int(b["attention_mask"].sum()) for b in batches)
        positions = sum(b["attention_mask"].numel() for b in batches)
        flops = [sample_flops(arch, s, targets, cfg.lora.r, checkpointing) for s in shapes]
        row.update(
            step_s=round(statistics.median(times), 4), tokens_per_step=tokens,
            padding_share=round(1 - tokens / positions, 3),
            tokens_per_s=round(tokens / statistics.median(times), 1), trainable_parameters=int(trainable),
            total_parameters=int(total), final_loss=round(float(loss.detach()) * len(batches), 4),
            model_tflop_per_step=round(sum(f.model for f in flops) / 1e12, 3),
            hardware_tflop_per_step=round(sum(f.hardware for f in flops) / 1e12, 3),
            model_gflop_per_token=round(sum(f.model for f in flops) / tokens / 1e9, 2),
        )
    except torch.cuda.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
    finally:
        if cuda:
            row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
            row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB, 2)
        del model, optimizer
        if cuda:
            torch.cuda.empty_cache()
    return row


def utilisation(row: dict, datasheet: float | None, measured: float) -> None:
    if "step_s" not in row:
        return
    for name, peak in (("datasheet", datasheet), ("measured", measured)):
        for kind in ("model", "hardware"):
            key = ("mfu" if kind == "model" else "hfu") + "_vs_" + name
            achieved = row[f"{kind}_tflop_per_step"] / row["step_s"]
            row[key] = round(achieved / peak, 4) if peak else None
    row["achieved_model_tflops"] = round(row["model_tflop_per_step"] / row["step_s"], 3)


def variants(device: str, cfg, arch, rows: Rows) -> list[dict]:
    if device != "cuda":  # the CPU check exercises both code paths, fp32
        return [{"label": "fp32 LoRA", "precision": "fp32", "micro_batch": 1, "gradient_checkpointing": False},
                {"label": "fp32 LoRA + checkpointing", "precision": "fp32", "micro_batch": 1,
                 "gradient_checkpointing": True}]
    from edugraph_pipeline.training.placement import current_gpu, plan, workload

    chosen = plan(workload(cfg, arch), current_gpu())
    rows.add("placement", **chosen.to_dict())
    out = [{"label": "placement", "precision": chosen.precision, "micro_batch": chosen.micro_batch,
            "gradient_checkpointing": chosen.gradient_checkpointing},
           {"label": "profile before placement: QLoRA", "precision": "nf4", "micro_batch": cfg.batch_size,
            "gradient_checkpointing": True},
           {"label": "bf16 at the profile's batch", "precision": "bf16", "micro_batch": cfg.batch_size,
            "gradient_checkpointing": True}]
    unique = []
    for variant in out:
        if not any({k: v for k, v in u.items() if k != "label"} == {k: v for k, v in variant.items() if k != "label"}
                   for u in unique):
            unique.append(variant)
    return unique


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="4b", choices=["2b", "4b", "8b", "qwen3.5-4b"])
    parser.add_argument("--tiny", action="store_true", help="CPU: 1 text + 1 vision layer, batch 1, small images")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, help="data-sheet dense bf16 peak (default: by device name)")
    parser.add_argument("--classify-images", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=430.0, help="skip a variant that would not finish in time")
    parser.add_argument("--jsonl", help="append each row here as it finishes")
    parser.add_argument("--out", help="write the whole report as JSON here at the end")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import torch
    from transformers import AutoConfig

    from edugraph_pipeline.training.architecture import from_config
    from edugraph_pipeline.training.chat_template import training_chat_template
    from edugraph_pipeline.training.profiles import profile, stage_config
    from edugraph_pipeline.training.sft import load_processor
    from edugraph_pipeline_tests.kit.hub_models import build_hub_model

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device (use --tiny for the CPU check)", file=sys.stderr)
        return 2
    if args.tiny:
        args.steps, args.warmup, args.classify_images = 1, 1, 1
    rows = Rows(args.jsonl)
    env = rows.add("environment", size=args.size, tiny=args.tiny, **environment(device))
    ceiling = rows.add("matmul_ceiling", **matmul_ceiling(device))
    datasheet = peak_tflops(env["device"], args.peak_tflops) if device == "cuda" else args.peak_tflops
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        layers = {"text_layers": 1, "vision_layers": 1} if args.tiny else {}
        folder = build_hub_model(args.size, Path(tmp) / "base", **layers)
        config = AutoConfig.from_pretrained(folder)
        arch = from_config(config.to_dict())
        cfg = stage_config("worksheet", base_model=str(folder), dataset_path="-", output_dir=tmp,
                           prof=profile(args.size), mode="train", device=device)
        if args.tiny:
            cfg = cfg.with_(batch_size=1, grad_accum=1, max_pixels=32 * 32 * 16)
        processor = load_processor(cfg)
        page = (256, 192) if args.tiny else (1024, 768)  # 768 image tokens at the 4b profile's budget
        template = training_chat_template(processor, str(folder))
        feats = features(processor, template, cfg.batch_size * cfg.grad_accum, page)
        shapes = [sample_shape(f) for f in feats]
        mean_seq = statistics.mean(s.sequence for s in shapes)
        rows.add("shape", build_s=round(time.perf_counter() - start, 1), effective_batch=len(feats), lora_r=cfg.lora.r,
                 max_pixels=cfg.max_pixels, mean_sequence=mean_seq, patches_per_image=shapes[0].patches_per_image,
                 label_positions=shapes[0].logit_positions, datasheet_bf16_tflops=datasheet,
                 legacy_gflop_per_token_6n=round(legacy_flops_per_token(
                     config, mean_seq, sum(s.patches for s in shapes) / sum(s.sequence for s in shapes), 6) / 1e9, 2))
        training, last_s = [], 0.0
        for variant in variants(device, cfg, arch, rows):
            elapsed = time.perf_counter() - started
            if elapsed + last_s > args.budget_s:
                rows.add("skipped", **variant, reason=f"{elapsed:.0f} s used; the last variant took {last_s:.0f} s "
                         f"of a {args.budget_s:.0f} s budget")
                continue
            begun = time.perf_counter()
            row = measure_training(variant, folder, cfg, feats, args.steps, args.warmup, device, arch,
                                   processor.tokenizer.pad_token_id)
            utilisation(row, datasheet, ceiling["tflops"])
            if training and "step_s" in row and "step_s" in training[0]:
                row["step_time_vs_first"] = round(row["step_s"] / training[0]["step_s"], 2)
            training.append(rows.add("training", **row))
            last_s = time.perf_counter() - begun
        classify = None
        if time.perf_counter() - started + 60 < args.budget_s:
            classify = rows.add("classify", **measure_classify(folder, device, args.classify_images, page))
    summary = rows.add("summary", line=summary_line(env, ceiling, training, classify))
    print(summary["line"])
    if args.out:
        Path(args.out).write_text(json.dumps(rows.rows, indent=2), encoding="utf-8")
    return 0


def summary_line(env: dict, ceiling: dict, training: list[dict], classify: dict | None) -> str:
    def share(value):
        return "n/a" if value is None else f"{value:.1%}"

    parts = [f"gpu_check {env['device']} (matmul ceiling {ceiling['tflops']} TFLOP/s)"]
    for row in training:
        if "error" in row:
            parts.append(f"{row['label']}: {row['error']}")
            continue
        parts.append(
            f"{row['label']} ({row['precision']}, micro {row['micro_batch']}, checkpointing "
            f"{'on' if row['gradient_checkpointing'] else 'off'}): {row['step_s']:.2f} s/step, "
            f"{row['tokens_per_s']:.0f} tok/s, MFU {share(row['mfu_vs_datasheet'])} of the data sheet / "
            f"{share(row['mfu_vs_measured'])} of measured, HFU {share(row['hfu_vs_measured'])} of measured, "
            f"reserved {row.get('peak_reserved_gib', 'n/a')} GiB (estimate {row['estimate_gib']['total']})"
        )
    if classify:
        parts.append(f"classify {classify['median_s']:.2f} s/image")
    return " | ".join(parts)


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
    return {"images": n, "median_s": round(statistics.median(latencies), 3), "max_s": round(max(latencies), 3)}


if __name__ == "__main__":
    raise SystemExit(main())
