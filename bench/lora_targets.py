"""Stage-2 LoRA targets, measured (issues 10, 25): ``language`` (the language model's linears; vision tower and
projector frozen: upstream's choice, which lets a GGUF reuse the base's mmproj) vs ``all-linear`` (also the vision
tower and the merger), through the training code's own choice (`training/lora_targets.py`).

* a Hub shape (default the 4B; ``--shape qwen3.5-4b`` too), full depth, by arithmetic (`architecture.py`, checked
  against PEFT on the meta device by test_architecture.py): trainable parameters, the LoRA state (fp32 weight,
  gradient and two Adam moments: 16 bytes each) and the whole stage-2 memory estimate (`placement.estimate`, bf16
  at the profile's micro-batch with gradient checkpointing), and the placement each choice gets on a 24 GB L4;
* the same shape cut to 1 text + 2 vision layers (`kit.hub_models`: published widths, random bf16 weights), trained
  on the CPU in fp32 through `train_worksheet_adapter` for ``--shape-steps`` steps of one sample: seconds per step
  (what the vision tower's backward adds, at CPU speed);
* ``--tiny``: the tiny profile trained on generated worksheets (300 train / 48 held out), held-out exact match and
  label micro-F1 (the real release: `bench/real_exercises.py --targets language,all-linear`).

    nice -n 10 python bench/lora_targets.py [--shape 4b] [--shape-steps 4] [--skip-cpu-steps] [--tiny --steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edugraph_pipeline.training.lora_targets import CHOICES  # noqa: E402

GIB = 2**30


def label_f1(predictions: list[str], truths: list[str]) -> float:
    """Micro-F1 over (dimension, label) pairs; an unparsable answer predicts nothing."""
    def pairs(text: str) -> set:
        try:
            answer = json.loads(text)
        except ValueError:
            return set()
        if not isinstance(answer, dict):
            return set()
        return {(dim, str(label)) for dim, labels in answer.items() if isinstance(labels, list) for label in labels}

    tp = fp = fn = 0
    for predicted, truth in zip(predictions, truths):
        p, t = pairs(predicted), pairs(truth)
        tp, fp, fn = tp + len(p & t), fp + len(p - t), fn + len(t - p)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def shape_memory(size: str) -> list[dict]:
    """Trainable parameters, LoRA state and the stage-2 estimate of each choice at the full published shape."""
    from edugraph_pipeline.training.architecture import lora_parameters, lora_targets
    from edugraph_pipeline.training.placement import estimate, workload
    from edugraph_pipeline.training.placement_table import REFERENCE_GPUS, stage_plan
    from edugraph_pipeline.training.profiles import profile, stage_config
    from edugraph_pipeline.training.published_models import for_base_model

    prof = profile(size)
    arch = for_base_model(prof.base_model)
    rows = []
    for choice in CHOICES:
        cfg = stage_config("worksheet", base_model=prof.base_model, dataset_path="-", output_dir="-", prof=prof,
                           mode="train", device="cuda", lora_targets=choice)
        work = workload(cfg, arch)
        trainable = lora_parameters(lora_targets(arch, work.target_modules), cfg.lora.r)
        bf16 = estimate(work, "bf16", cfg.batch_size, True)
        from dataclasses import replace

        on_l4 = stage_plan(replace(prof, lora_targets=choice), REFERENCE_GPUS["L4 24 GB"])
        rows.append({
            "shape": prof.base_model, "targets": choice, "lora_r": cfg.lora.r,
            "trainable_parameters": trainable,
            "lora_state_gib": round(bf16.lora_state / GIB, 2),
            "activations_gib_bf16_checkpointed": round(bf16.activations / GIB, 2),
            "estimate_gib_bf16_checkpointed": round(bf16.total / GIB, 2),
            "l4_placement": f"{on_l4.precision} {on_l4.micro_batch}x{on_l4.grad_accum} "
                            f"checkpointing {'on' if on_l4.gradient_checkpointing else 'off'} "
                            f"({on_l4.estimate.total / GIB:.1f} GiB)",
        })
    return rows


def shape_step_time(size: str, steps: int, root: Path) -> list[dict]:
    """Seconds per one-sample step on the CPU (fp32) of the shallow Hub-shaped model, per choice."""
    from edugraph_pipeline.training.profiles import profile, stage_config
    from edugraph_pipeline.training.sft import train_worksheet_adapter
    from edugraph_pipeline_tests.kit.hub_models import build_hub_model
    from edugraph_pipeline_tests.kit.synthetic import make_worksheet_dataset

    base = build_hub_model(size, root / "base", text_layers=2 if size.startswith("qwen3.5") else 1, vision_layers=2)
    make_worksheet_dataset(root / "ws", n_train=max(8, steps), n_validation=2, seed=3)
    rows = []
    for choice in CHOICES:
        cfg = stage_config("worksheet", base_model=str(base), dataset_path=str(root / "ws"),
                           output_dir=str(root / choice), prof=profile(size), mode="train", device="cpu",
                           lora_targets=choice, save_minutes=0)
        cfg = cfg.with_(batch_size=1, grad_accum=1, max_steps=steps, save_steps=10**6, logging_steps=1)
        metrics = train_worksheet_adapter(cfg)
        rows.append({
            "shape": f"{size}, 1 text + 2 vision layers" if not size.startswith("qwen3.5") else
                     f"{size}, 2 text + 2 vision layers",
            "targets": choice, "steps": metrics["steps_this_run"],
            "seconds_per_step": round(metrics["wall_time_s"] / max(1, metrics["steps_this_run"]), 2),
            "trainable_parameters": metrics["trainable_parameters"],
            "peak_rss_gib": round(metrics["peak_memory_bytes"] / GIB, 2),
        })
    return rows


def train_tiny(steps: int, root: Path) -> list[dict]:
    from datasets import load_from_disk
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from edugraph_pipeline.training.profiles import profile, stage_config
    from edugraph_pipeline.training.quickeval import generate_answer
    from edugraph_pipeline.training.sft import load_processor, train_worksheet_adapter
    from edugraph_pipeline.training.tiny_model import PretrainConfig, build_tiny_model, pretrain_tiny_model
    from edugraph_pipeline_tests.kit.synthetic import make_worksheet_dataset

    base = root / "base"
    pretrain_tiny_model(build_tiny_model(root / "raw"), base, PretrainConfig(steps=200, n_images=300))
    make_worksheet_dataset(root / "ws", n_train=300, n_validation=48, seed=7)
    validation = load_from_disk(str(root / "ws"))["validation"]
    rows = []
    for choice in CHOICES:
        cfg = stage_config("worksheet", base_model=str(base), dataset_path=str(root / "ws"),
                           output_dir=str(root / choice), prof=profile("tiny"), mode="train", lora_targets=choice,
                           save_minutes=0).with_(max_steps=steps, save_steps=10**6)
        metrics = train_worksheet_adapter(cfg)
        model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(str(base)), metrics["adapter_path"])
        model.eval()
        processor = load_processor(cfg)
        start = time.perf_counter()
        predictions = [generate_answer(model, processor, row["image"]) for row in validation]
        truths = list(validation["labels"])
        rows.append({
            "targets": choice,
            "trainable_parameters": metrics["trainable_parameters"],
            "seconds_per_step": metrics["wall_time_s"] / max(1, metrics["steps_this_run"]),
            "exact_match": sum(p == t for p, t in zip(predictions, truths)) / len(truths),
            "label_micro_f1": label_f1(predictions, truths),
            "eval_s": time.perf_counter() - start,
            "train_loss": metrics["train_loss"],
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="4b", choices=["2b", "4b", "8b", "qwen3.5-4b", "qwen3.5-9b", "qwen3.5-27b"])
    parser.add_argument("--shape-steps", type=int, default=4, help="CPU steps per choice on the shallow shape")
    parser.add_argument("--skip-cpu-steps", action="store_true", help="only the full shape's arithmetic")
    parser.add_argument("--tiny", action="store_true", help="also train the tiny profile on generated worksheets")
    parser.add_argument("--steps", type=int, default=200, help="tiny: stage-2 steps")
    args = parser.parse_args(argv)
    report: dict = {"shape_memory": shape_memory(args.shape)}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_cpu_steps and args.shape in ("2b", "4b", "qwen3.5-4b"):
            start = time.perf_counter()
            report["shape_cpu_steps"] = shape_step_time(args.shape, args.shape_steps, Path(tmp) / "shape")
            report["shape_cpu_wall_s"] = round(time.perf_counter() - start, 1)
        if args.tiny:
            report["tiny"] = train_tiny(args.steps, Path(tmp) / "tiny")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
