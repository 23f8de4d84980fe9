"""The model card: parseable YAML with the lineage, a body that states it, deterministic bytes."""

from __future__ import annotations

import json

import yaml
from huggingface_hub import ModelCard

from edugraph_pipeline.publishing.model_card import (
    AdapterLineage,
    PublicationLineage,
    project_code_version,
    render_model_card,
    write_model_card,
)

LINEAGE = PublicationLineage(
    repo_id="edugraph/edugraph-labeller",
    base_model="Qwen/Qwen3-VL-2B-Instruct",
    base_model_revision="0123abc",
    ontology_release="v0.21.0",
    ontology_commit="9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
    content_release="content-2026.01",
    content_hash="sha256:feedbeef",
    knowledge_dataset_fingerprint="kfp123",
    worksheet_dataset_fingerprint="wfp456",
    knowledge_dataset_repo="edugraph/edugraph-knowledge",
    worksheet_dataset_repo="edugraph/edugraph-worksheets",
    knowledge_adapter=AdapterLineage(path="/out/knowledge/v0.21.0/adapter", run_id="run-k", data_version="dvk"),
    trained_adapter=AdapterLineage(path="/out/trained/v0.21.0/adapter", run_id="run-w", data_version="dvw",
                                   partition="v0.21.0"),
    merged_model_data_version="dvm",
    hyperparameters={"worksheet": {"learning_rate": 2e-4, "epochs": 3, "lora_r": 16},
                     "knowledge": {"learning_rate": 1e-4, "epochs": 1}},
    code_version="abcdef1234567890",
    pipeline_version="0.1.0",
    dagster_run_id="dagster-run-1",
)
EVALUATION = {
    "split": "test",
    "num_examples": 40,
    "exact_match": 0.625,
    "per_dimension": {
        "Area": {"precision": 0.9, "recall": 0.8, "f1": 0.847},
        "Scope": {"precision": 0.7, "recall": 0.6, "f1": 0.646},
        "Ability": {"precision": 0.5, "recall": 0.4, "f1": 0.444},
    },
    "baseline": {"name": "Base model (zero-shot)", "exact_match": 0.05,
                 "per_dimension": {"Area": {"precision": 0.3, "recall": 0.2, "f1": 0.24}}},
}


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_yaml_parses_and_holds_the_lineage():
    text = render_model_card(LINEAGE, EVALUATION)
    meta = front_matter(text)
    assert meta["base_model"] == "Qwen/Qwen3-VL-2B-Instruct"
    assert meta["license"] == "apache-2.0"
    assert meta["pipeline_tag"] == "image-text-to-text"
    assert meta["library_name"] == "transformers"
    assert {"edugraph", "qwen3-vl", "education", "math"} <= set(meta["tags"])
    assert meta["datasets"] == ["edugraph/edugraph-knowledge", "edugraph/edugraph-worksheets"]
    lineage = meta["edugraph"]
    assert lineage["ontology_release"] == "v0.21.0"
    assert lineage["ontology_commit"] == LINEAGE.ontology_commit
    assert lineage["content_release"] == "content-2026.01" and lineage["content_hash"] == "sha256:feedbeef"
    assert lineage["knowledge_dataset_fingerprint"] == "kfp123"
    assert lineage["worksheet_dataset_fingerprint"] == "wfp456"
    assert lineage["trained_adapter"]["run_id"] == "run-w"
    assert lineage["knowledge_adapter"]["data_version"] == "dvk"
    assert lineage["hyperparameters"]["worksheet"]["lora_r"] == 16
    assert lineage["code_version"] == "abcdef1234567890"
    assert lineage["evaluation"]["exact_match"] == 0.625
    # huggingface_hub reads it back too, with the evaluation as model-index results.
    card = ModelCard(text)
    assert card.data.base_model == "Qwen/Qwen3-VL-2B-Instruct"
    assert {r.metric_type for r in card.data.eval_results} == {"exact_match", "f1"}


def test_body_states_lineage_evaluation_and_usage():
    text = render_model_card(LINEAGE, EVALUATION)
    body = text.split("---\n", 2)[2]
    for needle in ("v0.21.0", LINEAGE.ontology_commit, "content-2026.01", "sha256:feedbeef", "kfp123", "wfp456",
                   "run-k", "run-w", "dvm", "abcdef1234567890", "dagster-run-1", "learning_rate"):
        assert needle in body, needle
    assert "| Exact match (all three dimensions) | 0.625 | 0.050 |" in body
    assert "| Area F1 | 0.847 | 0.240 |" in body
    assert "| Ability recall | 0.400 | — |" in body
    assert "AutoModelForImageTextToText" in body and "AutoProcessor" in body
    assert 'model_id = "edugraph/edugraph-labeller"' in body
    assert "edugraph classify worksheet.png" in body


def test_deterministic_and_lineage_round_trips(tmp_path):
    assert render_model_card(LINEAGE, EVALUATION) == render_model_card(LINEAGE, json.loads(json.dumps(EVALUATION)))
    restored = PublicationLineage.from_dict(json.loads(LINEAGE.to_json()))
    assert restored == LINEAGE
    assert render_model_card(restored, EVALUATION) == render_model_card(LINEAGE, EVALUATION)
    readme = write_model_card(tmp_path, LINEAGE, EVALUATION)
    assert readme.read_bytes() == render_model_card(LINEAGE, EVALUATION).encode("utf-8")
    assert PublicationLineage.from_dict(json.loads((tmp_path / "edugraph_lineage.json").read_text())) == LINEAGE


def test_minimal_lineage_without_evaluation():
    lineage = PublicationLineage(repo_id="me/model", base_model="Qwen/Qwen3-VL-2B-Instruct",
                                 ontology_release="v0.1.0", ontology_commit="abc")
    text = render_model_card(lineage)
    meta = front_matter(text)
    assert "model-index" not in meta and "datasets" not in meta
    assert meta["edugraph"] == {"ontology_commit": "abc", "ontology_release": "v0.1.0"}
    assert "No evaluation results were recorded" in text


def test_project_code_version(monkeypatch, tmp_path):
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=checkout, check=True, capture_output=True, text=True).stdout.strip()

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above tmp_path is found
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git("init", "-q")
    (checkout / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "one")
    assert project_code_version(checkout, configured=" pinned-sha ") == "pinned-sha"  # EDUGRAPH_CODE_VERSION wins
    monkeypatch.setenv("EDUGRAPH_CODE_VERSION", "from-the-environment")  # read by settings only, never here
    sha = git("rev-parse", "HEAD")
    assert len(sha) == 40 and project_code_version(checkout) == sha == project_code_version(checkout, configured="")
    (checkout / "code.py").write_text("x = 2\n")
    assert project_code_version(checkout) == f"{sha}-dirty"
    outside = tmp_path / "no-checkout"
    outside.mkdir()
    assert project_code_version(outside) is None
