"""Merge the LoRA stages into one standalone model folder (what is evaluated, classified with and published).

The folder holds safetensors weights in the base checkpoint's dtype (bf16 for every Hub Qwen3-VL, whatever device
the merge runs on: an fp32 merge on a CPU host would publish twice the size), the processor exactly as training bounded it (image-token budget,
chat template), and `edugraph_prompts.json` with the production prompts, so it loads offline with
`AutoModelForImageTextToText` + `AutoProcessor` and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from edugraph_pipeline.prompts import SYSTEM_PROMPT, USER_PROMPT
from edugraph_pipeline.storage.layout import (
    ADAPTER_FOLDER,
    KNOWLEDGE_ADAPTER_COPY_FOLDER,
    PROMPTS_FILE,
    STAGE_METRICS_FILE,
)
from edugraph_pipeline.training.revision import pinned_folder


def trained_revision(artifact_dir: Path) -> str | None:
    """The base revision a stage-2 training artifact was trained on (what the merge must load)."""
    metrics = json.loads((artifact_dir / STAGE_METRICS_FILE).read_text(encoding="utf-8"))
    return metrics.get("base_model_revision")


def trained_artifact(artifact_dir: Path) -> tuple[str, list[str]]:
    """The base and the adapters (knowledge, then worksheet) of a stage-2 training artifact, in merge order."""
    metrics = json.loads((artifact_dir / STAGE_METRICS_FILE).read_text(encoding="utf-8"))
    knowledge = artifact_dir / KNOWLEDGE_ADAPTER_COPY_FOLDER
    adapters = [str(knowledge)] if knowledge.is_dir() else []
    return metrics["base_model"], [*adapters, str(artifact_dir / ADAPTER_FOLDER)]


def load_with_adapters(base_model: str, adapters: Sequence[str], *, merge: bool = True, revision: str | None = None):
    """The base (at `revision`, in its checkpoint dtype) with each adapter applied in order; merged into plain
    weights unless `merge` is False."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(pinned_folder(base_model, revision), dtype="auto")
    for index, adapter in enumerate(adapters):
        model = PeftModel.from_pretrained(model, adapter)
        if merge or index < len(adapters) - 1:
            model = model.merge_and_unload()
    return model.eval()


def merge_into_folder(
    base_model: str, adapters: Sequence[str], processor_source: str, output: Path, revision: str | None = None
) -> dict:
    """Write the merged model to `output` (an empty or new folder) and describe what was written."""
    from transformers import AutoProcessor

    model = load_with_adapters(base_model, adapters, revision=revision)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    AutoProcessor.from_pretrained(processor_source).save_pretrained(output)
    (output / PROMPTS_FILE).write_text(
        json.dumps({"system": SYSTEM_PROMPT, "user": USER_PROMPT}, indent=2), encoding="utf-8"
    )
    return {
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "base_model_revision": revision,
        "size_bytes": sum(path.stat().st_size for path in output.rglob("*") if path.is_file()),
    }
