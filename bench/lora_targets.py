"""Stage-2 LoRA targets, measured (issue 10): ``all-linear`` (language model + vision tower + merger) vs the language
model's linears only (upstream's choice since December 2025, which lets its GGUF reuse the base's mmproj).

* tiny profile, trained: the same pretrained tiny base, the same generated worksheets (300 train / 48 held out),
  the same steps; held-out exact match and label micro-F1, trainable parameters, seconds per step;
* a Hub shape (default 4B, full depth, on the meta device: nothing allocated): trainable parameters and the
  memory they add (fp32 weights + gradients + two Adam moments: 16 bytes each), next to the weights' memory
  in bf16 and with QLoRA's NF4 language model.

    python bench/lora_targets.py [--steps 200] [--shape 4b] [--skip-training]
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

TARGETS = {"all-linear": "all-linear", "language-only": None}  # None: sft.LANGUAGE_MODEL_LINEAR


def target_modules(name: str):
    from edugraph_pipeline.training.sft import LANGUAGE_MODEL_LINEAR

    return TARGETS[name] or LANGUAGE_MODEL_LINEAR


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


def train_tiny(steps: int, root: Path) -> list[dict]:
    from dataclasses import replace

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
    for name in TARGETS:
        prof = profile("tiny")
        prof = replace(prof, worksheet=replace(prof.worksheet, target_modules=target_modules(name)))
        cfg = stage_config("worksheet", base_model=str(base), dataset_path=str(root / "ws"),
                           output_dir=str(root / name), prof=prof, mode="train").with_(max_steps=steps, save_steps=10**6)
        metrics = train_worksheet_adapter(cfg)
        model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(str(base)), metrics["adapter_path"])
        model.eval()
        processor = load_processor(cfg)
        start = time.perf_counter()
        predictions = [generate_answer(model, processor, row["image"]) for row in validation]
        truths = list(validation["labels"])
        rows.append({
            "targets": name,
            "trainable_parameters": metrics["trainable_parameters"],
            "seconds_per_step": metrics["wall_time_s"] / max(1, metrics["steps_this_run"]),
            "exact_match": sum(p == t for p, t in zip(predictions, truths)) / len(truths),
            "label_micro_f1": label_f1(predictions, truths),
            "eval_s": time.perf_counter() - start,
            "train_loss": metrics["train_loss"],
        })
    return rows


def shape_counts(size: str, r: int) -> list[dict]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3VLForConditionalGeneration

    from edugraph_pipeline_tests.kit.hub_models import hub_config

    rows = []
    for name in TARGETS:
        with torch.device("meta"):
            model = Qwen3VLForConditionalGeneration._from_config(hub_config(size), dtype=torch.bfloat16)
        total = sum(p.numel() for p in model.parameters())
        vision = sum(p.numel() for n, p in model.named_parameters() if n.startswith("model.visual"))
        embedding = model.get_input_embeddings().weight.numel()
        language_linear = sum(
            m.weight.numel() for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.startswith("model.language_model")
        )
        peft = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=target_modules(name)))
        trainable, _ = peft.get_nb_trainable_parameters()
        nf4 = language_linear * 0.5 * 1.03 + (total - language_linear) * 2  # NF4 + double-quant absmax; the rest bf16
        rows.append({
            "shape": size, "targets": name, "lora_r": r,
            "trainable_parameters": int(trainable),
            "lora_training_state_gib": round(trainable * 16 / 2**30, 2),
            "weights_bf16_gib": round(total * 2 / 2**30, 2),
            "weights_qlora_gib": round(nf4 / 2**30, 2),
            "vision_parameters": int(vision), "embedding_parameters": int(embedding), "total_parameters": int(total),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--shape", default="4b", choices=["2b", "4b", "8b"])
    parser.add_argument("--skip-training", action="store_true", help="only the shape's parameter counts")
    args = parser.parse_args(argv)
    from edugraph_pipeline.training.profiles import PROFILES

    report = {"shape": shape_counts(args.shape, PROFILES[args.shape].worksheet.r)}
    if not args.skip_training:
        with tempfile.TemporaryDirectory() as tmp:
            report["tiny"] = train_tiny(args.steps, Path(tmp))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
