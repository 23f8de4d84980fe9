"""The two LoRA stages as plain functions of a `StageConfig` (peft + trl `SFTTrainer`; no Dagster here).

* `train_knowledge_adapter(cfg)`: stage 1, text-only LoRA SFT on the knowledge dataset (answers only in the loss).
* `train_worksheet_adapter(cfg)`: stage 2, the knowledge adapter (if any) merged into the base, then multimodal
  LoRA SFT on the worksheet dataset's ``train`` split, answer-only loss, bounded image-token budget.

Both checkpoint into ``<work_dir or output_dir>/checkpoints`` every ``save_steps`` and resume from the last checkpoint found
there; the adapter (PEFT, safetensors) and the processor are written to ``<output_dir>/adapter`` and the metrics
to ``<output_dir>/metrics.json``. Where a stage runs and whether it quantizes is `device.placement_for`'s rule
(no silent fallback to the CPU or to bf16); QLoRA quantizes the language model only (NF4, bf16 compute), never the
vision tower or the embeddings. Both stages train on the base's own chat template with ``{% generation %}``
markers (`chat_template.training_chat_template`); the processor saved with the adapter keeps the base's template.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

from edugraph_pipeline.storage.layout import ADAPTER_FOLDER, KNOWLEDGE_ADAPTER_COPY_FOLDER, STAGE_METRICS_FILE
from edugraph_pipeline.training.chat_template import training_chat_template
from edugraph_pipeline.training.data import (
    FeatureCollator,
    FeatureDataset,
    encode_worksheets,
    knowledge_rows,
    masked_lm_loss,
    worksheet_rows,
)
from edugraph_pipeline.training.device import Placement, placement_for
from edugraph_pipeline.training.merge import load_with_adapters
from edugraph_pipeline.training.profiles import TINY, StageConfig
from edugraph_pipeline.training.revision import folder_revision, is_local, pinned_folder

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
MERGED_BASE_DIR = "merged-base"
# Stage 1 teaches the language model; the vision tower stays as it is.
LANGUAGE_MODEL_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# Kept in bf16 under QLoRA: the vision tower (its own, small linears: NF4 costs it accuracy for little memory, and the
# GGUF export reuses it as the mmproj) and the output head (tied to the embeddings in 2B/4B).
NOT_QUANTIZED = ["model.visual", "lm_head"]  # module-name prefixes (transformers matches from the start)
# Profiles whose stage 2 also trains the embedding rows of the answers' tokens (tied to the LM head, so the output
# rows too). The tiny base is pretrained on captions only: the rows of the concept names' tokens are still at their
# random init, LoRA cannot move them, and stage 2 then plateaus at a loss of ~3.5 per answer token on the shared
# real release (~1.3 with the rows trained, same 600 steps: bench/real_exercises.py). Hub bases know these tokens.
ANSWER_TOKEN_PROFILES = frozenset({TINY})


# ----------------------------------------------------------------------------------------------------------------
# Environment, model identity
# ----------------------------------------------------------------------------------------------------------------


def work_dir(cfg: StageConfig) -> Path:
    return Path(cfg.work_dir or cfg.output_dir)


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def peak_memory_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def model_revision(base_model: str) -> str | None:
    """A local folder's content hash (what `revision.pinned_folder` verifies); a Hub id has its commit in the config."""
    return folder_revision(base_model) if is_local(base_model) else None


# ----------------------------------------------------------------------------------------------------------------
# Model loading
# ----------------------------------------------------------------------------------------------------------------


def load_processor(cfg: StageConfig, source: str | None = None):
    """The base's processor with the stage's pixel budget (`source`: a merged base folder of our own)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(source or pinned_folder(cfg.base_model, cfg.base_revision))
    # Stage 1 tokenizes through the tokenizer alone: it must render the same template as the processor.
    if processor.chat_template and not processor.tokenizer.chat_template:
        processor.tokenizer.chat_template = processor.chat_template
    processor.image_processor.size = {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


def quantization_config():
    """QLoRA's NF4 for the language model's linears only (see `NOT_QUANTIZED`)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=NOT_QUANTIZED,  # transformers applies this list to 4-bit loading too
    )


def _load_model(source: str, placement: Placement):
    import torch
    from transformers import AutoModelForImageTextToText

    kwargs: dict = {}
    if placement.device == "cuda":
        kwargs["dtype"] = torch.bfloat16
        kwargs["device_map"] = {"": 0}
        if placement.quantize_4bit:
            kwargs["quantization_config"] = quantization_config()
    else:
        kwargs["dtype"] = torch.float32
    # No `prepare_model_for_kbit_training`: it upcasts every non-quantized weight (embeddings, lm_head, the
    # vision tower) to fp32, about 4 GB more for a 4B. Qwen's RMSNorm already computes in fp32, and non-reentrant
    # gradient checkpointing needs no input gradients.
    return AutoModelForImageTextToText.from_pretrained(source, **kwargs)


def merged_base(cfg: StageConfig) -> str:
    """The folder to train stage 2 on: the pinned base, or the knowledge adapter merged into it (saved once)."""
    if not cfg.knowledge_adapter:
        return pinned_folder(cfg.base_model, cfg.base_revision)
    target = work_dir(cfg) / MERGED_BASE_DIR
    if (target / "config.json").exists():
        return str(target)
    model = load_with_adapters(cfg.base_model, [cfg.knowledge_adapter], revision=cfg.base_revision)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp, safe_serialization=True)
    load_processor(cfg).save_pretrained(tmp)
    os.replace(tmp, target)
    return str(target)


def answer_token_ids(tokenizer, answers) -> list[int]:
    """Every token id of the answer texts, plus ``<|im_end|>`` (the answer's end is in the loss too)."""
    ids = {tokenizer.convert_tokens_to_ids("<|im_end|>")}
    for text in answers:
        ids.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    return sorted(ids)


def lora_config(cfg: StageConfig, trainable_tokens: list[int] | None = None):
    """The stage's LoRA; `trainable_tokens`: embedding rows trained as well (PEFT's trainable tokens, which
    follow a tied LM head)."""
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    if cfg.stage == "knowledge" and targets == "all-linear":
        targets = LANGUAGE_MODEL_LINEAR
    extra = {"trainable_token_indices": {"embed_tokens": list(trainable_tokens)}} if trainable_tokens else {}
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
        **extra,
    )


# ----------------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------------


def _trainer_class(answer_loss: bool, sft: bool = True):
    """trl's `SFTTrainer` (datasets it prepares itself) or transformers' `Trainer` (pre-encoded features),
    optionally computing the LM head only on label positions (`masked_lm_loss`: same loss, far less work)."""
    from transformers import Trainer
    from trl import SFTTrainer

    base = SFTTrainer if sft else Trainer
    if not answer_loss:
        return base

    class AnswerLossTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = {k: v for k, v in inputs.items() if k not in ("completion_mask", "assistant_masks")}
            loss, outputs = masked_lm_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            return (loss, outputs) if return_outputs else loss

    AnswerLossTrainer.__name__ = f"AnswerLoss{base.__name__}"
    return AnswerLossTrainer


def effective_max_steps(cfg: StageConfig, n_train: int) -> int:
    """``cfg.max_steps`` as a cap: never more steps than the configured epochs over `n_train` examples."""
    if cfg.max_steps <= 0:
        return -1
    per_epoch = math.ceil(n_train / (cfg.batch_size * cfg.grad_accum))
    return max(1, min(cfg.max_steps, math.ceil(per_epoch * cfg.lora.epochs)))


def sft_args(cfg: StageConfig, n_train: int, placement: Placement, **overrides):
    from trl import SFTConfig

    cuda = placement.device == "cuda"
    kwargs = dict(
        output_dir=str(work_dir(cfg) / CHECKPOINT_DIR),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lora.lr,
        lr_scheduler_type=cfg.lora.lr_scheduler,
        warmup_steps=cfg.lora.warmup_ratio,
        weight_decay=cfg.lora.weight_decay,
        num_train_epochs=cfg.lora.epochs,
        max_steps=effective_max_steps(cfg, n_train),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        bf16=cuda,
        max_length=cfg.max_length,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=cfg.dataloader_num_workers,
        disable_tqdm=True,
        use_cpu=not cuda,
    )
    # trl defaults gradient checkpointing to on: only worth its recomputation on a GPU's memory budget.
    kwargs["gradient_checkpointing"] = bool(cuda and cfg.gradient_checkpointing)
    if kwargs["gradient_checkpointing"]:
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def last_checkpoint(cfg: StageConfig) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = work_dir(cfg) / CHECKPOINT_DIR
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def _run(
    cfg: StageConfig, trainer, processor, n_train: int, base_used: str, placement: Placement, extra: dict
) -> dict:
    resume = last_checkpoint(cfg)
    resumed_from = None
    tokens_before = 0
    if resume:
        state = json.loads((Path(resume) / "trainer_state.json").read_text())
        resumed_from = int(state.get("global_step", 0))
        tokens_before = int(state.get("num_input_tokens_seen") or 0)
        log.info("resuming from %s (step %s)", resume, resumed_from)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - start
    adapter_dir = Path(cfg.output_dir) / ADAPTER_FOLDER
    trainer.model.save_pretrained(adapter_dir, safe_serialization=True)
    processor.save_pretrained(adapter_dir)
    # The adapter applies to the base with the knowledge adapter merged in, not to the temporary merged folder:
    # name the real base, and ship the knowledge adapter alongside so the artifact is self-contained.
    adapter_config = adapter_dir / "adapter_config.json"
    config = json.loads(adapter_config.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = cfg.base_model
    adapter_config.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    knowledge_copy = Path(cfg.output_dir) / KNOWLEDGE_ADAPTER_COPY_FOLDER
    if cfg.knowledge_adapter:
        shutil.copytree(cfg.knowledge_adapter, knowledge_copy, dirs_exist_ok=True)
    state = trainer.state
    steps_run = state.global_step - (resumed_from or 0)
    samples = steps_run * cfg.batch_size * cfg.grad_accum
    trainable, total = trainer.model.get_nb_trainable_parameters()
    losses = [(int(e["step"]), float(e["loss"])) for e in state.log_history if "loss" in e and "step" in e]
    tokens_this_run = int(state.num_input_tokens_seen or 0) - tokens_before
    targets = lora_config(cfg).target_modules
    metrics = {
        "stage": cfg.stage,
        "adapter_path": str(adapter_dir),
        "base_model": cfg.base_model,
        "base_model_revision": cfg.base_revision or model_revision(cfg.base_model),
        "trained_on": base_used,
        "knowledge_adapter": cfg.knowledge_adapter,
        "knowledge_adapter_copy": str(knowledge_copy) if cfg.knowledge_adapter else None,
        "hyperparameters": {
            **cfg.lora.__dict__,
            "batch_size": cfg.batch_size,
            "grad_accum": cfg.grad_accum,
            "max_steps": cfg.max_steps,
            "max_length": cfg.max_length,
            "min_pixels": cfg.min_pixels,
            "max_pixels": cfg.max_pixels,
            "seed": cfg.seed,
            "quantized_4bit": placement.quantize_4bit,
            "target_modules_effective": sorted(targets) if isinstance(targets, (set, list)) else targets,
        },
        "trainable_parameters": int(trainable),
        "total_parameters": int(total),
        "train_samples": n_train,
        "steps": int(state.global_step),
        "steps_this_run": int(steps_run),
        "resumed_from_step": resumed_from,
        "wall_time_s": wall,
        "samples_per_s": samples / wall if wall > 0 else None,
        "tokens_seen": tokens_this_run,
        "tokens_per_s": tokens_this_run / wall if wall > 0 else None,
        "peak_memory_bytes": peak_memory_bytes(),
        "device": device_name(),
        "placement": placement.to_dict(),
        "train_loss": float(result.training_loss),
        "loss_history": losses,
        **extra,
    }
    Path(cfg.output_dir, STAGE_METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


# ----------------------------------------------------------------------------------------------------------------
# The stages
# ----------------------------------------------------------------------------------------------------------------


def train_knowledge_adapter(cfg: StageConfig, callbacks: list | None = None) -> dict:
    """Stage 1: text-only LoRA SFT on the knowledge dataset; loss on the assistant answers only."""
    from datasets import load_from_disk
    from peft import get_peft_model

    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    dataset = load_from_disk(cfg.dataset_path)
    if hasattr(dataset, "keys"):  # a DatasetDict: train on its train split
        dataset = dataset["train"]
    dataset = knowledge_rows(dataset, cfg.max_train_samples)
    placement = placement_for(cfg)
    processor = load_processor(cfg)
    training_chat_template(processor, cfg.base_model)  # fails here, before the model loads, if none can be had
    model = _load_model(pinned_folder(cfg.base_model, cfg.base_revision), placement)
    model = get_peft_model(model, lora_config(cfg))
    trainer_cls = _trainer_class(cfg.loss_on_labels_only)
    trainer = trainer_cls(  # trl swaps in the same generation-marked template for assistant_only_loss
        model=model,
        args=sft_args(cfg, len(dataset), placement, assistant_only_loss=True),
        train_dataset=dataset,
        processing_class=processor.tokenizer,
        callbacks=callbacks,
    )
    return _run(cfg, trainer, processor, len(dataset), cfg.base_model, placement, {})


def train_worksheet_adapter(cfg: StageConfig, callbacks: list | None = None) -> dict:
    """Stage 2: (knowledge adapter merged into the base, then) multimodal LoRA SFT on the worksheets."""
    from datasets import load_from_disk
    from peft import get_peft_model

    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    splits = load_from_disk(cfg.dataset_path)
    train = splits["train"] if hasattr(splits, "keys") else splits
    placement = placement_for(cfg)
    processor = load_processor(cfg)
    template = training_chat_template(processor, cfg.base_model)
    base = merged_base(cfg)
    model = _load_model(base, placement)
    # Only with our answer-only loss: trl's own loss reads the head's weight directly, past PEFT's token wrapper.
    train_rows = cfg.profile in ANSWER_TOKEN_PROFILES and cfg.loss_on_labels_only
    tokens = answer_token_ids(processor.tokenizer, train["labels"]) if train_rows else []
    model = get_peft_model(model, lora_config(cfg, tokens))
    trainer_cls = _trainer_class(cfg.loss_on_labels_only)
    if cfg.cache_features:
        encode_start = time.perf_counter()
        features = encode_worksheets(processor, train, cfg.max_train_samples, chat_template=template)
        encode_s = time.perf_counter() - encode_start
        dataset = FeatureDataset(features)
        trainer = _trainer_class(cfg.loss_on_labels_only, sft=False)(
            model=model,
            args=sft_args(
                cfg,
                len(dataset),
                placement,
                remove_unused_columns=False,
                train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
            ),
            train_dataset=dataset,
            data_collator=FeatureCollator(processor.tokenizer.pad_token_id),
            processing_class=processor,
            callbacks=callbacks,
        )
        image_tokens = [int((f["mm_token_type_ids"] == 1).sum()) for f in features]
        extra = {
            "feature_cache": True,
            "encode_time_s": encode_s,
            "image_tokens_per_image_max": max(image_tokens) if image_tokens else 0,
            "sequence_length_max": max((len(f["input_ids"]) for f in features), default=0),
        }
    else:  # the upstream way: trl's vision collator runs the processor on raw images every batch
        dataset = worksheet_rows(train, cfg.max_train_samples)
        trainer = trainer_cls(
            model=model,
            args=sft_args(cfg, len(dataset), placement, assistant_only_loss=True),
            train_dataset=dataset,
            processing_class=processor,
            callbacks=callbacks,
        )
        extra = {"feature_cache": False}
    extra["trainable_token_rows"] = len(tokens)
    return _run(cfg, trainer, processor, len(dataset), base, placement, extra)


def train_stage(cfg: StageConfig, callbacks: list | None = None) -> dict:
    if cfg.stage == "knowledge":
        return train_knowledge_adapter(cfg, callbacks)
    if cfg.stage == "worksheet":
        return train_worksheet_adapter(cfg, callbacks)
    raise ValueError(f"unknown stage {cfg.stage!r}")
