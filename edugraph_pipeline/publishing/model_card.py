"""The Hub model card (README.md) of a published EduGraph labeller, with its full lineage.

`render_model_card(lineage, evaluation)` returns the README text: YAML front matter built with
`huggingface_hub.ModelCardData` (base model, licence, pipeline tag, tags, datasets, a ``model-index`` with the
evaluation, and the whole lineage under ``edugraph:``) and a Markdown body that states where the model comes from
(ontology release and commit, content release and hash, dataset fingerprints, adapters, hyperparameters, code
version), how well it labels (exact match and per-dimension precision / recall / F1 against a baseline) and how to
use it. The output depends only on its inputs - no clock, no environment - so republishing the same model
produces the same README bytes, and with them no new Hub commit.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

DIMENSIONS = ("Area", "Scope", "Ability")
BASE_TAGS = ("edugraph", "qwen3-vl", "education", "math", "worksheet-labelling", "image-text-to-text", "lora")
UPSTREAM_ONTOLOGY = "https://github.com/christian-bick/edugraph-ontology"


@dataclass(frozen=True)
class AdapterLineage:
    """One trained LoRA adapter: where it is, which run made it, and the data version Dagster gave it."""

    path: str | None = None
    run_id: str | None = None
    data_version: str | None = None
    partition: str | None = None
    hub_repo: str | None = None  # if the adapter itself is published


@dataclass(frozen=True)
class PublicationLineage:
    """Everything a published model came from. Plain, JSON-serialisable (`to_dict` / `from_dict` / `to_json`)."""

    repo_id: str
    base_model: str
    ontology_release: str
    ontology_commit: str
    base_model_revision: str | None = None
    content_release: str | None = None
    content_hash: str | None = None
    knowledge_dataset_fingerprint: str | None = None
    worksheet_dataset_fingerprint: str | None = None
    knowledge_dataset_repo: str | None = None  # Hub dataset ids, when the datasets are published too
    worksheet_dataset_repo: str | None = None
    knowledge_adapter: AdapterLineage | None = None
    trained_adapter: AdapterLineage | None = None
    merged_model_data_version: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # e.g. {"knowledge": {...}, "worksheet": {...}}
    code_version: str | None = None  # git sha of this project (see `project_code_version`)
    pipeline_version: str | None = None
    dagster_run_id: str | None = None
    trained_at: str | None = None  # only from the lineage, never the clock
    model_name: str | None = None
    license: str = "apache-2.0"
    language: tuple[str, ...] = ("en",)
    extra_tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["language"] = list(self.language)
        data["extra_tags"] = list(self.extra_tags)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublicationLineage:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown lineage field(s): {', '.join(unknown)}")
        values = dict(data)
        for key in ("knowledge_adapter", "trained_adapter"):
            if isinstance(values.get(key), dict):
                values[key] = AdapterLineage(**values[key])
        for key in ("language", "extra_tags"):
            if key in values and values[key] is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    @property
    def datasets(self) -> list[str]:
        return [d for d in (self.knowledge_dataset_repo, self.worksheet_dataset_repo) if d]


def project_code_version(start: str | os.PathLike | None = None, *, configured: str = "") -> str | None:
    """This project's code version: `configured` (``EDUGRAPH_CODE_VERSION``, passed in by the caller) if not
    empty, else ``git rev-parse HEAD`` of the checkout holding `start` (``-dirty`` when tracked files are
    modified), else None (e.g. an installed wheel without a checkout)."""
    if configured.strip():
        return configured.strip()
    cwd = Path(start) if start is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


# --------------------------------------------------------------------------------------------------- evaluation
def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt(value: Any) -> str:
    number = _num(value)
    return "—" if number is None else f"{number:.3f}"


def _dimension_scores(result: dict, dimension: str) -> dict[str, Any]:
    """`result["per_dimension"][dim]` (or `result[dim]`) with precision / recall / f1 keys."""
    per_dim = result.get("per_dimension") or {}
    scores = per_dim.get(dimension) or result.get(dimension) or {}
    return scores if isinstance(scores, dict) else {}


def _evaluation_section(evaluation: dict | None) -> str:
    if not evaluation:
        return "No evaluation results were recorded for this model.\n"
    baseline = evaluation.get("baseline") if isinstance(evaluation.get("baseline"), dict) else None
    lines = []
    described = []
    if evaluation.get("split"):
        described.append(f"split `{evaluation['split']}`")
    if evaluation.get("num_examples") is not None:
        described.append(f"{evaluation['num_examples']} worksheets")
    if evaluation.get("dataset"):
        described.append(f"dataset `{evaluation['dataset']}`")
    if described:
        lines.append("Evaluated on " + ", ".join(described) + ".\n")
    baseline_name = (baseline or {}).get("name", "baseline")
    header = "| Metric | This model |" + (f" {baseline_name} |" if baseline else "")
    rule = "| --- | --- |" + (" --- |" if baseline else "")
    lines += [header, rule]

    def row(label: str, ours: Any, theirs: Any) -> None:
        lines.append(f"| {label} | {_fmt(ours)} |" + (f" {_fmt(theirs)} |" if baseline else ""))

    row("Exact match (all three dimensions)", evaluation.get("exact_match"), (baseline or {}).get("exact_match"))
    for dimension in DIMENSIONS:
        ours, theirs = _dimension_scores(evaluation, dimension), _dimension_scores(baseline or {}, dimension)
        for metric, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
            row(f"{dimension} {label}", ours.get(metric), theirs.get(metric))
    if evaluation.get("json_valid_rate") is not None or (baseline or {}).get("json_valid_rate") is not None:
        row("Valid JSON answers", evaluation.get("json_valid_rate"), (baseline or {}).get("json_valid_rate"))
    return "\n".join(lines) + "\n"


def _eval_results(lineage: PublicationLineage, evaluation: dict | None) -> list[EvalResult] | None:
    if not evaluation:
        return None
    dataset = lineage.worksheet_dataset_repo or "edugraph-worksheets"
    common = dict(
        task_type="image-text-to-text",
        task_name="Worksheet labelling",
        dataset_type=dataset,
        dataset_name=evaluation.get("dataset") or "EduGraph worksheets",
        dataset_split=evaluation.get("split"),
    )
    results = []
    if _num(evaluation.get("exact_match")) is not None:
        results.append(EvalResult(**common, metric_type="exact_match", metric_name="Exact match",
                                  metric_value=_num(evaluation["exact_match"])))
    for dimension in DIMENSIONS:
        f1 = _num(_dimension_scores(evaluation, dimension).get("f1"))
        if f1 is not None:
            results.append(EvalResult(**common, metric_type="f1", metric_name=f"{dimension} F1", metric_value=f1))
    return results or None


# --------------------------------------------------------------------------------------------------- rendering
def _value(value: Any) -> str:
    return "—" if value in (None, "") else f"`{value}`"


def _adapter_rows(name: str, adapter: AdapterLineage | None) -> list[str]:
    if adapter is None:
        return [f"| {name} | — (not used) |"]
    parts = [
        f"path {_value(adapter.path)}",
        f"run {_value(adapter.run_id)}",
        f"data version {_value(adapter.data_version)}",
    ]
    if adapter.partition:
        parts.append(f"partition {_value(adapter.partition)}")
    if adapter.hub_repo:
        parts.append(f"Hub [`{adapter.hub_repo}`](https://huggingface.co/{adapter.hub_repo})")
    return [f"| {name} | " + ", ".join(parts) + " |"]


def _hyperparameter_section(hyperparameters: dict[str, Any]) -> str:
    if not hyperparameters:
        return "Not recorded.\n"
    nested = all(isinstance(v, dict) for v in hyperparameters.values())
    groups = hyperparameters if nested else {"training": hyperparameters}
    out = []
    for group in sorted(groups):
        out.append(f"**{group}**\n")
        out.append("| Hyperparameter | Value |")
        out.append("| --- | --- |")
        for key in sorted(groups[group]):
            value = groups[group][key]
            shown = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else value
            out.append(f"| {key} | `{shown}` |")
        out.append("")
    return "\n".join(out)


def _prompts() -> tuple[str, str]:
    """The production prompts (the model was trained on exactly these), or generic ones if unavailable."""
    try:
        from edugraph_pipeline.prompts import SYSTEM_PROMPT, USER_PROMPT
    except ImportError:  # pragma: no cover - the prompts module is part of the pipeline
        return (
            "Label K-4 math learning material with EduGraph concepts. Answer with a single JSON object: "
            '{"Area": ["..."], "Scope": ["..."], "Ability": ["..."]}',
            "Label this worksheet with the EduGraph concepts it trains. Answer with the JSON object only.",
        )
    return SYSTEM_PROMPT, USER_PROMPT


def _usage_section(repo_id: str) -> str:
    system_prompt, user_prompt = _prompts()
    return f"""Use the prompts the model was trained with:

```python
import json

from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

model_id = "{repo_id}"
SYSTEM_PROMPT = {json.dumps(system_prompt)}
USER_PROMPT = {json.dumps(user_prompt)}

processor = AutoProcessor.from_pretrained(model_id)
model = AutoModelForImageTextToText.from_pretrained(model_id, dtype="auto", device_map="auto")

messages = [
    {{"role": "system", "content": [{{"type": "text", "text": SYSTEM_PROMPT}}]}},
    {{"role": "user", "content": [
        {{"type": "image", "image": Image.open("worksheet.png")}},
        {{"type": "text", "text": USER_PROMPT}},
    ]}},
]
inputs = processor.apply_chat_template(
    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
).to(model.device)
output = model.generate(**inputs, max_new_tokens=256, do_sample=False)
answer = processor.decode(output[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
labels = json.loads(answer)  # {{"Area": [...], "Scope": [...], "Ability": [...]}} or {{"Error": "UnsupportedMaterial"}}
```

With the EduGraph pipeline installed, the same from the command line (prints the labels as JSON):

```bash
edugraph classify worksheet.png
```
"""


def render_model_card(lineage: PublicationLineage, evaluation: dict | None = None) -> str:
    """The README.md text of the published model (deterministic: same inputs, same bytes)."""
    tags = list(dict.fromkeys((*BASE_TAGS, *lineage.extra_tags)))
    model_name = lineage.model_name or lineage.repo_id.split("/")[-1]
    eval_results = _eval_results(lineage, evaluation)
    card_data = ModelCardData(
        base_model=lineage.base_model,
        license=lineage.license,
        language=list(lineage.language) or None,
        pipeline_tag="image-text-to-text",
        library_name="transformers",
        tags=tags,
        datasets=lineage.datasets or None,
        model_name=model_name if eval_results else None,
        eval_results=eval_results,
        edugraph=_yaml_lineage(lineage, evaluation),
    )
    ontology_tree = f"{UPSTREAM_ONTOLOGY}/tree/{lineage.ontology_commit}" if lineage.ontology_commit else None
    ontology = f"[`{lineage.ontology_release}`]({ontology_tree})" if ontology_tree else _value(lineage.ontology_release)
    base = lineage.base_model + (f"@{lineage.base_model_revision}" if lineage.base_model_revision else "")
    dataset_rows = [
        f"| Knowledge dataset (stage 1) | fingerprint {_value(lineage.knowledge_dataset_fingerprint)}"
        + (f", Hub [`{lineage.knowledge_dataset_repo}`](https://huggingface.co/datasets/{lineage.knowledge_dataset_repo})"
           if lineage.knowledge_dataset_repo else "") + " |",
        f"| Worksheet dataset (stage 2) | fingerprint {_value(lineage.worksheet_dataset_fingerprint)}"
        + (f", Hub [`{lineage.worksheet_dataset_repo}`](https://huggingface.co/datasets/{lineage.worksheet_dataset_repo})"
           if lineage.worksheet_dataset_repo else "") + " |",
    ]
    lineage_rows = [
        "| Input | Version |",
        "| --- | --- |",
        f"| Base model | [`{base}`](https://huggingface.co/{lineage.base_model}) |",
        f"| EduGraph ontology release | {ontology}, commit {_value(lineage.ontology_commit)} |",
        f"| Worksheet content release | {_value(lineage.content_release)}, hash {_value(lineage.content_hash)} |",
        *dataset_rows,
        *_adapter_rows("Knowledge adapter (stage 1)", lineage.knowledge_adapter),
        *_adapter_rows("Worksheet adapter (stage 2)", lineage.trained_adapter),
        f"| Merged model data version | {_value(lineage.merged_model_data_version)} |",
        f"| Pipeline code version | {_value(lineage.code_version)}"
        + (f" (edugraph-pipeline {lineage.pipeline_version})" if lineage.pipeline_version else "") + " |",
        f"| Dagster run | {_value(lineage.dagster_run_id)} |",
    ]
    if lineage.trained_at:
        lineage_rows.append(f"| Trained at | {_value(lineage.trained_at)} |")

    body = f"""# {model_name}

A fine-tuned [Qwen3-VL](https://huggingface.co/{lineage.base_model}) that labels images of K-4 math worksheets with
the [EduGraph ontology]({UPSTREAM_ONTOLOGY}): for each worksheet it answers a JSON object
`{{"Area": [...], "Scope": [...], "Ability": [...]}}` whose entries are ontology entity names.

It was produced by the EduGraph pipeline in two LoRA stages on `{base}`: a text-only stage on question/answer pairs
about the ontology (knowledge), then a multimodal stage on labelled worksheet images; the adapters are merged into
the base, so this repository holds plain `transformers` weights (safetensors) with their processor and chat template.

## Lineage

{chr(10).join(lineage_rows)}

The same lineage is in this card's metadata under `edugraph:`.

## Training hyperparameters

{_hyperparameter_section(lineage.hyperparameters)}
## Evaluation

{_evaluation_section(evaluation)}
Exact match counts a worksheet as correct only when all three label sets equal the reference; precision, recall
and F1 compare the predicted with the reference labels of each dimension.

## Usage

{_usage_section(lineage.repo_id)}
## Licence

{lineage.license}; the EduGraph ontology is published by its authors at {UPSTREAM_ONTOLOGY}.
"""
    card = ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}", body=body)
    text = str(card)
    return text if text.endswith("\n") else text + "\n"


def _pruned(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v not in (None, {}, [], ())}
    return value


def _yaml_lineage(lineage: PublicationLineage, evaluation: dict | None) -> dict[str, Any]:
    data = lineage.to_dict()
    for key in ("repo_id", "base_model", "license", "language", "extra_tags", "model_name"):
        data.pop(key, None)  # already in the card's standard fields
    data = _pruned(data)
    if evaluation:
        data["evaluation"] = json.loads(json.dumps(evaluation, sort_keys=True, default=str))
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def write_model_card(folder: str | os.PathLike, lineage: PublicationLineage, evaluation: dict | None = None) -> Path:
    """Render the card into `folder/README.md` (and the lineage into `folder/edugraph_lineage.json`)."""
    folder = Path(folder)
    readme = folder / "README.md"
    readme.write_text(render_model_card(lineage, evaluation), encoding="utf-8")
    (folder / LINEAGE_FILE).write_text(lineage.to_json() + "\n", encoding="utf-8")
    return readme


LINEAGE_FILE = "edugraph_lineage.json"
