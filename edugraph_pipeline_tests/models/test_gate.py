"""The evaluation gate binds to the exact model: a publication asset run alone refuses a merged model whose
content differs from the one `model_evaluation` evaluated, even when that evaluation passed."""

from __future__ import annotations

import json

import dagster as dg

from edugraph_pipeline.defs.publication.assets import hf_publication
from edugraph_pipeline.defs.resources import ArtifactStoreResource, HubPublisher
from edugraph_pipeline.storage import ArtifactStore
from edugraph_pipeline.storage.layout import model_version
from edugraph_pipeline_tests.conftest import TOKEN

REPO = "edugraph/labeller"


def merge(store: ArtifactStore, weights: bytes) -> str:
    """A merged_model artifact (what merged_model writes, minus real weights) and its content hash."""
    with store.publish("merged_model", None, {"ontology_version": "v0.21.0"}) as staging:
        (staging / "model").mkdir()
        (staging / "model" / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}), encoding="utf-8")
        (staging / "model" / "model.safetensors").write_bytes(weights)
    return model_version(store.current("merged_model") / "model")


def evaluate(store: ArtifactStore, version: str, passed: bool = True) -> None:
    record = {"ontology_version": "v0.21.0", "passed": passed, "model_version": version, "reasons": []}
    with store.publish("model_evaluation", None, {"model_version": version}) as staging:
        (staging / "evaluation.json").write_text(json.dumps(record), encoding="utf-8")


def test_model_version_is_the_content_hash(tmp_path):
    store = ArtifactStore(tmp_path)
    first = merge(store, b"\0" * 16)
    assert merge(store, b"\0" * 16) == first  # same files, another version folder and time: same model
    assert merge(store, b"\1" * 16) != first


def test_a_re_merged_model_is_not_published_on_the_old_models_pass(hub, tmp_path):
    store = ArtifactStore(tmp_path / "out")
    evaluate(store, merge(store, b"\0" * 16), passed=True)
    merge(store, b"\1" * 16)  # re-merged (different weights), not evaluated
    resources = {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "hub": HubPublisher(repo_id=REPO, endpoint=hub.endpoint, token=TOKEN),
    }
    refused = dg.materialize([hf_publication], resources=resources, raise_on_error=False)
    assert not refused.success
    message = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert "was not evaluated" in message and "materialize model_evaluation again" in message
    assert hub.head(REPO) is None


def test_gguf_files_of_an_unevaluated_model_are_not_published(hub, tmp_path):
    from edugraph_pipeline.defs.publication.gguf import gguf_publication
    from edugraph_pipeline.gguf.convert import MANIFEST
    from edugraph_pipeline_tests.gguf.test_gguf_fast import fake_manifest

    store = ArtifactStore(tmp_path / "out")
    evaluate(store, merge(store, b"\0" * 16), passed=True)
    remerged = merge(store, b"\1" * 16)
    manifest = fake_manifest("Q8_0")
    with store.publish("gguf_model", None, {"merged_model_version": remerged, "quant": "Q8_0"}) as staging:
        (staging / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        (staging / manifest["text_model"]["file"]).write_bytes(b"GGUF" + b"\1" * 64)
        (staging / manifest["mmproj"]["file"]).write_bytes(b"GGUF" + b"\2" * 64)
    resources = {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "hub": HubPublisher(repo_id=REPO, endpoint=hub.endpoint, token=TOKEN),
    }
    refused = dg.materialize([gguf_publication], resources=resources, raise_on_error=False)
    assert not refused.success
    assert "was not evaluated" in refused.get_step_failure_events()[0].step_failure_data.error.message
    assert hub.head(f"{REPO}-GGUF") is None
