"""The production path on folders shaped exactly like the Hub's Qwen3-VL 2B / 4B (issue 10) and Qwen3.5-4B (issue
25), on the CPU.

`EDUGRAPH_MODEL=<size> EDUGRAPH_BASE_MODEL=<Hub-shaped folder> EDUGRAPH_RUN_MODE=test EDUGRAPH_DEVICE=cpu` through
base_model -> knowledge_adapter -> trained_adapter -> merged_model -> model_evaluation -> hf_publication (a local
Hub) and `edugraph classify`. The folders have every published width, head count, vocabulary and rope setting,
the Hub's processor files and chat template, and 1 text + 2 vision layers (Qwen3.5: 2 text layers, one Gated
DeltaNet and one gated full-attention layer) of random bf16 weights so 2 cores train them (the 8B shape, untied
4096-wide embeddings, is slow-marked). A second test pins the base revision of a Hub id: a push to `main` after
`base_model` changes nothing.
"""

from __future__ import annotations

import json
import random

import dagster as dg
import pytest

from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.training.profiles import profile
from edugraph_pipeline.training.revision import folder_revision
from edugraph_pipeline_tests.conftest import PIPELINE_ASSETS, TOKEN, dag_resources
from edugraph_pipeline_tests.kit.hub_models import build_hub_model, hub_chat_template, published

TAG = "v0.21.0"
REPO = "edugraph/worksheet-labeller"
PIPELINE = [
    "ontology_release", "knowledge_dataset", "worksheet_dataset", "knowledge_adapter", "trained_adapter",
    "merged_model", "model_evaluation", "hf_publication",
]
RELAXED_GATE = {"ops": {"model_evaluation": {"config": {
    "gate_profile": "tiny", "limit": 2, "batch_size": 2, "max_new_tokens": 24,  # random weights: never an early stop
    "thresholds": {"min_json_valid_rate": 0.0, "min_labels_valid_rate": 0.0, "min_baseline_margin": -1.0},
}}}}


def metadata(result, asset: str) -> dict:
    return {key: value.value for key, value in result.asset_materializations_for_node(asset)[0].metadata.items()}


@pytest.fixture
def run_env(monkeypatch, tmp_path, ontology_remote, hub):
    def configure(size: str, base_model: str, sample_count: int = 8) -> dict:
        monkeypatch.setenv("EDUGRAPH_MODEL", size)
        monkeypatch.setenv("EDUGRAPH_BASE_MODEL", base_model)
        monkeypatch.setenv("EDUGRAPH_RUN_MODE", "test")
        monkeypatch.setenv("EDUGRAPH_DEVICE", "cpu")
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        return dag_resources(tmp_path, ontology_remote, hub, sample_count=sample_count, repo_id=REPO)

    return configure


TEXT_LAYERS = {"qwen3.5-4b": 2}  # one layer of each kind; Qwen3-VL: 1


@pytest.mark.parametrize("size", ["2b", "4b", "qwen3.5-4b", pytest.param("8b", marks=pytest.mark.slow)])  # 8B: ~12 GB
def test_the_dag_runs_on_a_hub_shaped_base(size, run_env, instance, hub, tmp_path, capsys):
    from edugraph_pipeline.inference.classify_command import classify_main

    base = build_hub_model(size, tmp_path / f"hub-{size}", text_layers=TEXT_LAYERS.get(size, 1), vision_layers=2)
    resources = run_env(size, str(base))
    assert dg.materialize(PIPELINE_ASSETS, selection=["base_model"], resources=resources, instance=instance).success
    instance.add_dynamic_partitions(ontology_partitions.name, [TAG])
    result = dg.materialize(PIPELINE_ASSETS, selection=PIPELINE, partition_key=TAG, resources=resources,
                            instance=instance, run_config=RELAXED_GATE)
    assert result.success
    store = resources["artifact_store"].store()

    # Both stages trained the pinned base, on the CPU on purpose (fp32, the profile's batch; the metrics say so).
    revision = folder_revision(base)
    prof = profile(size)
    micro, accum = prof.batch_size, prof.grad_accum
    for stage in ("knowledge_adapter", "trained_adapter"):
        job = json.loads((store.asset_dir(stage) / "job_result.json").read_text())
        assert job["base_model_revision"] == revision, stage
        assert job["placement"] == {
            "device": "cpu", "precision": "fp32", "quantize_4bit": False, "micro_batch": micro, "grad_accum": accum,
            "effective_batch": micro * accum, "gradient_checkpointing": False, "memory": None,
            "stack_knowledge_adapter": False,
            "reason": f"EDUGRAPH_DEVICE=cpu: fp32, micro-batch {micro} x {accum} (effective {micro * accum}), "
                      f"gradient checkpointing off"}, stage
        assert job["trainable_parameters"] > 0 and job["train_loss"] > 0, stage
    trained = json.loads((store.asset_dir("trained_adapter") / "job_result.json").read_text())
    assert trained["hyperparameters"]["lora_targets"] == prof.lora_targets
    assert trained["knowledge_adapter_applied"] == "merged"
    adapted = json.loads((store.asset_dir("trained_adapter") / "adapter" / "adapter_config.json").read_text())
    if size.startswith("qwen3.5"):  # the Gated DeltaNet layer is adapted too
        assert "in_proj_qkv" in str(adapted["target_modules"]) or adapted["target_modules"] == "all-linear"
    assert json.loads((store.asset_dir("trained_adapter") / "job_result.json").read_text())["sequence_length_max"] > 0

    # The merged model: the published architecture, bf16 like the base (not fp32 on this GPU-less host), and the
    # Hub's inference template (training used the generation-marked variant only).
    merged = metadata(result, "merged_model")
    assert merged["dtype"] == "bfloat16"
    base_bytes = sum(p.stat().st_size for p in base.glob("*.safetensors"))
    folder = store.asset_dir("merged_model") / "model"
    merged_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert abs(merged_bytes - base_bytes) / base_bytes < 0.01
    config = json.loads((folder / "config.json").read_text())
    sizing = published(size)
    fields = ("hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size")
    assert [config["text_config"][name] for name in fields] == [sizing["text_config"][name] for name in fields]
    assert (config["model_type"], config["vision_config"]["hidden_size"], config["vision_config"]["out_hidden_size"]) == (
        sizing["model_type"], sizing["vision_config"]["hidden_size"], sizing["text_config"]["hidden_size"])
    from transformers import AutoProcessor

    assert AutoProcessor.from_pretrained(folder).chat_template == hub_chat_template(size)

    # Evaluated, gated and published to the (local) Hub.
    assert metadata(result, "model_evaluation")["ontology_version"] == TAG
    publication = metadata(result, "hf_publication")
    assert hub.head(REPO) == publication["commit_id"]
    assert {"config.json", "model.safetensors", "ontology.json"} <= set(hub.files(REPO))

    # `edugraph classify` on the merged model: one answer line (strict JSON), the model's text written under the
    # vocabulary mask of the release the folder ships, and the answer that release makes of it.
    from edugraph_pipeline.ontology.model import Ontology
    from edugraph_pipeline_tests.answer_checks import assert_model_answer
    from edugraph_pipeline_tests.kit.synthetic import draw_worksheet

    sheet = tmp_path / "sheet.png"
    draw_worksheet("add10", random.Random(1)).save(sheet)
    capsys.readouterr()
    assert classify_main([str(sheet), "--model", str(folder), "--max-new-tokens", "24", "--raw"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    answer = json.loads(line)
    raw = answer.pop("raw")
    bound = Ontology.load(folder / "ontology.json")
    assert bound.version == TAG
    assert_model_answer(answer, raw, bound)


def test_a_hub_base_is_pinned_to_the_commit_base_model_resolved(run_env, instance, hub, raw_hub_like, monkeypatch):
    """base_model resolves `main` once; a later push to `main` does not reach the training stage."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    repo = "qwen-fixture/Qwen3-VL-2B-Instruct"
    api.create_repo(repo)
    first = api.upload_folder(repo_id=repo, folder_path=str(raw_hub_like["first"])).oid
    resources = run_env("2b", repo)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)  # the training subprocess downloads from the local Hub
    base_run = dg.materialize(PIPELINE_ASSETS, selection=["base_model"], resources=resources, instance=instance)
    assert metadata(base_run, "base_model")["revision"] == first
    second = api.upload_folder(repo_id=repo, folder_path=str(raw_hub_like["second"])).oid
    assert second != first and hub.head(repo) == second
    instance.add_dynamic_partitions(ontology_partitions.name, [TAG])
    stage1 = dg.materialize(PIPELINE_ASSETS, selection=["ontology_release", "knowledge_dataset", "knowledge_adapter"],
                            partition_key=TAG, resources=resources, instance=instance)
    assert stage1.success
    job = json.loads((resources["artifact_store"].store().asset_dir("knowledge_adapter") / "job_result.json").read_text())
    assert job["base_model_revision"] == first
    downloads = [r.path for r in hub.requests if "/resolve/" in r.path and repo in r.path]
    assert downloads and all(f"/resolve/{first}/" in path for path in downloads), downloads


@pytest.fixture
def raw_hub_like(tmp_path):
    """Two commits' worth of a Hub-layout folder: the tiny architecture (fast), the Hub's processor files and
    chat template; the second has other weights."""
    from edugraph_pipeline.training.tiny_model import TinySpec, build_tiny_model
    from edugraph_pipeline_tests.kit.hub_models import write_processor_files

    folders = {}
    for name, seed in (("first", 0), ("second", 1)):
        folder = build_tiny_model(tmp_path / name, TinySpec(seed=seed))
        for stale in ("chat_template.jinja", "tiny_spec.json", "processor_config.json"):
            (folder / stale).unlink(missing_ok=True)
        write_processor_files(folder)
        folders[name] = folder
    return folders
