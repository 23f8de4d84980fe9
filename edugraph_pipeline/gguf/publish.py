"""Publication of a `gguf_model` folder to a ``<model repo>-GGUF`` Hub repository (one atomic, idempotent commit)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edugraph_pipeline.gguf.convert import MANIFEST

GGUF_SUFFIX = "-GGUF"


def gguf_repo_id(model_repo: str) -> str:
    """``namespace/name`` -> ``namespace/name-GGUF`` (unchanged when it already ends so)."""
    return model_repo if model_repo.endswith(GGUF_SUFFIX) else model_repo + GGUF_SUFFIX


def render_gguf_card(manifest: dict, repo_id: str, base_repo: str | None = None, lineage: dict | None = None) -> str:
    text, mmproj = manifest["text_model"], manifest["mmproj"]
    quant = manifest["quantization"]["requested"]
    lineage = lineage or {}
    front = ["---", "library_name: gguf", "pipeline_tag: image-text-to-text", "tags:", "- gguf", "- llama.cpp",
             "- qwen3_vl", "- edugraph"]
    if base_repo:
        front += ["base_model:", f"- {base_repo}", "base_model_relation: quantized"]
    front.append("---")
    fallbacks = manifest["quantization"]["fallbacks"]
    lines = [
        *front,
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        "GGUF files of the EduGraph worksheet classifier"
        + (f" [{base_repo}](../{base_repo})" if base_repo else "")
        + " for llama.cpp: the text model quantized to "
        f"**{quant}** and the Qwen3-VL vision projector (`mmproj`).",
        "",
        "| File | Size | Tensors | Types |",
        "| --- | --- | --- | --- |",
    ]
    for entry in (text, mmproj):
        types = ", ".join(f"{k}: {v}" for k, v in entry["tensor_types"].items())
        lines.append(f"| `{entry['file']}` | {entry['size_bytes'] / 2**20:.1f} MiB | {entry['tensor_count']} | {types} |")
    if fallbacks:
        lines += ["", f"{len(fallbacks)} tensor(s) could not take {quant}'s block layout (rows not a multiple of the "
                  "block size) and were stored with llama-quantize's fallback type."]
    limits = manifest.get("image_tokens", {})
    limit_args = "".join(f" --{k.replace('_', '-')} {v}" for k, v in limits.items())
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"llama-mtmd-cli -m {text['file']} --mmproj {mmproj['file']}{limit_args} --image worksheet.png \\",
        "    --temp 0 -p 'Label this worksheet with the EduGraph concepts it trains. Answer with the JSON object only.'",
        "```",
        "",
        "The pipeline's own backend (same prompts, vocabulary mask and answer repair as the transformers path): "
        "`edugraph classify --backend gguf worksheet.png`. `ontology.json` is the ontology release the model is "
        "bound to; `gguf.json` lists files, tensor types and the llama.cpp version that wrote them.",
    ]
    if lineage:
        lines += ["", "## Lineage", "", "```json", json.dumps(lineage, indent=2, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


def publish_gguf(
    folder: str | os.PathLike,
    repo_id: str,
    token: str | None,
    endpoint: str,
    *,
    base_repo: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
):
    """Make `repo_id` hold the GGUF folder's files plus a README.md model card; a `PublishResult`.

    `token` and `endpoint` are the Hub resource's (``HF_TOKEN``, ``HF_ENDPOINT``). Raises `PublicationError` (token
    redacted) on failure; nothing is committed when the repository already holds exactly these files.
    """
    from edugraph_pipeline.publishing import publish_folder

    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{folder} is no gguf_model folder (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    lineage_path = folder / "lineage.json"
    lineage = json.loads(lineage_path.read_text(encoding="utf-8")) if lineage_path.is_file() else None
    card = render_gguf_card(manifest, repo_id, base_repo, lineage)
    quant = manifest["quantization"]["requested"]
    return publish_folder(
        folder,
        repo_id,
        repo_type="model",
        token=token,
        endpoint=endpoint,
        private=private,
        commit_message=commit_message or f"GGUF {quant} + mmproj",
        extra_files={"README.md": card},
    )
