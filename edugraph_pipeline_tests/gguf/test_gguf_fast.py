"""The GGUF export's pure-Python parts: no llama.cpp build needed (the end-to-end test is in test_gguf_export.py)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.gguf import chat_template, convert
from edugraph_pipeline.gguf.publish import gguf_repo_id, publish_gguf, render_gguf_card
from edugraph_pipeline.llama_cpp_build import DIR_ENV, LlamaCpp, LlamaCppMissing, default_dir, default_threads
from edugraph_pipeline.prompts import SYSTEM_PROMPT, USER_PROMPT, V3_SYSTEM_PROMPT, classification_messages
from edugraph_pipeline.training.tiny_model.template import CHAT_TEMPLATE
from edugraph_pipeline_tests.conftest import TOKEN

TINY_PROCESSOR_CONFIG = {
    "image_processor": {
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "Qwen2VLImageProcessor",
        "merge_size": 2,
        "patch_size": 16,
        "size": {"longest_edge": 65536, "shortest_edge": 4096},
        "temporal_patch_size": 2,
    },
    "processor_class": "Qwen3VLProcessor",
}


def model_like_folder(root: Path) -> Path:
    folder = root / "model"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}), encoding="utf-8")
    (folder / "processor_config.json").write_text(json.dumps(TINY_PROCESSOR_CONFIG), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return folder


def test_quant_names(monkeypatch):
    assert convert.normalise_quant("q8_0") == "Q8_0"
    assert convert.normalise_quant(" Q4_K_M ") == "Q4_K_M"
    with pytest.raises(ValueError, match="unknown GGUF quantization 'Q3_XYZ'"):
        convert.normalise_quant("Q3_XYZ")
    with pytest.raises(ValueError, match="unknown GGUF quantization ''"):
        convert.normalise_quant("")  # no silent default: the caller resolves the setting


def test_the_run_config_quant_falls_back_to_its_setting_and_names_the_source(monkeypatch):
    from edugraph_pipeline import settings

    monkeypatch.delenv("EDUGRAPH_GGUF_QUANT", raising=False)
    assert settings.chosen("quant", "", "EDUGRAPH_GGUF_QUANT") == ("Q4_K_M", "EDUGRAPH_GGUF_QUANT")
    monkeypatch.setenv("EDUGRAPH_GGUF_QUANT", "q5_k_m")
    assert convert.normalise_quant(settings.chosen("quant", "", "EDUGRAPH_GGUF_QUANT")[0]) == "Q5_K_M"
    # the run config wins over the environment
    assert settings.chosen("quant", "Q4_K_M", "EDUGRAPH_GGUF_QUANT") == ("Q4_K_M", "config field 'quant'")


def test_missing_preprocessor_config_is_derived_in_a_copy(tmp_path):
    folder = model_like_folder(tmp_path)
    before = sorted(p.name for p in folder.iterdir())
    source, how = convert.prepare_source(folder, tmp_path / "work")
    assert how == "derived" and source != folder
    assert sorted(p.name for p in folder.iterdir()) == before, "the merged model artifact must not change"
    derived = json.loads((source / "preprocessor_config.json").read_text(encoding="utf-8"))
    assert derived["image_mean"] == [0.5, 0.5, 0.5] and derived["patch_size"] == 16
    assert (source / "model.safetensors").resolve() == (folder / "model.safetensors").resolve()
    (folder / "preprocessor_config.json").write_text("{}", encoding="utf-8")
    source, how = convert.prepare_source(folder, tmp_path / "work2")
    assert how == "present" and (source / "preprocessor_config.json").resolve() == (
        folder / "preprocessor_config.json").resolve()
    assert sorted(p.name for p in folder.iterdir()) == sorted([*before, "preprocessor_config.json"])


def render(template: str, messages: list, **kwargs) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages], chat_template=template, add_generation_prompt=True, **kwargs
    )
    return rendered[0]


def hub_template() -> str:
    from edugraph_pipeline_tests.kit.hub_models import hub_chat_template

    return hub_chat_template()


@pytest.mark.parametrize("template", [CHAT_TEMPLATE, "hub"], ids=["tiny", "hub"])
def test_the_served_chat_template_renders_the_trained_prompt_and_classifies_a_bare_image(template):
    template = hub_template() if template == "hub" else template
    served = chat_template.with_default_prompts(template)
    assert chat_template.with_default_prompts(served) == served  # applied once
    # What both backends render: exactly the training prompt, unchanged by the prelude.
    assert render(served, classification_messages()) == render(template, classification_messages())
    trained = render(template, classification_messages())
    # An image-only message (a list of parts, or llama-server's string with its media marker) gets both prompts.
    bare = [{"role": "user", "content": [{"type": "image"}]}]
    assert render(served, bare) == trained
    for marker in ("<__media_kA3TdcJq6QuwaIrBMxYcy6ypEZtACsl5__>", "<__media__>"):  # llama-server's, newer and older
        in_llama_server = render(served, [{"role": "user", "content": marker}])
        assert in_llama_server == trained.replace("<|vision_start|><|image_pad|><|vision_end|>", marker)
    # A client's own text replaces the user prompt; its own system message replaces the system prompt.
    own_text = render(served, [{"role": "user", "content": marker + "Classify this task image."}])
    assert SYSTEM_PROMPT in own_text and USER_PROMPT not in own_text and "Classify this task image." in own_text
    own_system = render(served, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": marker}])
    assert SYSTEM_PROMPT not in own_system and "Be brief." in own_system and USER_PROMPT in own_system
    # chat_template_kwargs {"answer_format": "v3"} asks in the v3 contract.
    v3 = render(served, bare, answer_format="v3")
    assert V3_SYSTEM_PROMPT in v3 and SYSTEM_PROMPT not in v3 and USER_PROMPT in v3


def test_the_export_source_carries_the_served_template_and_leaves_the_model_alone(tmp_path):
    folder = model_like_folder(tmp_path)
    config = {"model_max_length": 4096, "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    source, _ = convert.prepare_source(folder, tmp_path / "work")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    served = chat_template.with_default_prompts(CHAT_TEMPLATE)
    assert (source / "chat_template.jinja").read_text(encoding="utf-8") == served
    written = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert written == {**config, "chat_template": served}
    (folder / "chat_template.jinja").unlink()
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(ValueError, match="no chat template"):
        convert.prepare_source(folder, tmp_path / "work2")


def test_image_token_limits_follow_the_processor(tmp_path):
    folder = model_like_folder(tmp_path)
    # 4096 / (16 * 2)^2 = 4 and 65536 / 1024 = 64 tokens: the transformers processor's pixel bounds.
    assert convert.image_token_limits(folder) == {"image_min_tokens": 4, "image_max_tokens": 64}


def test_fallbacks_are_tensors_that_missed_the_main_type():
    f16 = {"token_embd.weight": "F16", "blk.0.attn_q.weight": "F16", "blk.0.ffn_down.weight": "F16",
           "blk.0.attn_norm.weight": "F32"}
    quantized = {"token_embd.weight": "Q6_K", "blk.0.attn_q.weight": "Q5_0", "blk.0.ffn_down.weight": "Q4_K",
                 "blk.0.attn_norm.weight": "F32"}
    assert convert._fallbacks(f16, quantized, "Q4_K_M") == {"blk.0.attn_q.weight": "Q5_0"}
    assert convert._fallbacks(f16, quantized, "Q8_0") == {}


def test_toolchain_location_and_missing_build(tmp_path, monkeypatch):
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "llama"))
    monkeypatch.delenv("EDUGRAPH_GGUF_THREADS", raising=False)
    llama = LlamaCpp.locate()
    assert llama.root == (tmp_path / "llama").resolve() and llama.thread_count == default_threads()
    assert not llama.available() and any("llama-quantize" in item for item in llama.missing())
    with pytest.raises(LlamaCppMissing, match="scripts/build-llama-cpp.sh"):
        llama.require()
    assert LlamaCpp.locate(tmp_path / "given").root == (tmp_path / "given").resolve()  # an argument wins
    monkeypatch.delenv(DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EDUGRAPH_LLAMA_CPP_VERSION", raising=False)
    assert default_dir(tmp_path / "cache") == tmp_path / "cache" / "edugraph" / "llama.cpp" / "0.3.36"
    assert LlamaCpp.locate().root == (tmp_path / "cache" / "edugraph" / "llama.cpp" / "0.3.36").resolve()
    monkeypatch.setenv("EDUGRAPH_LLAMA_CPP_VERSION", "0.3.99")
    assert LlamaCpp.locate().root.name == "0.3.99"


def test_gguf_threads_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("EDUGRAPH_GGUF_THREADS", "3")
    assert LlamaCpp.locate(tmp_path).thread_count == 3
    assert LlamaCpp(tmp_path).thread_count == default_threads() >= 1  # built directly: nothing configured
    monkeypatch.setenv("EDUGRAPH_GGUF_THREADS", "many")
    with pytest.raises(ValueError, match=r"EDUGRAPH_GGUF_THREADS='many': expected an integer"):
        LlamaCpp.locate(tmp_path)
    monkeypatch.setenv("EDUGRAPH_GGUF_THREADS", "0")
    with pytest.raises(ValueError, match=r"EDUGRAPH_GGUF_THREADS=0: expected at least 1"):
        LlamaCpp.locate(tmp_path)


def test_build_script_is_valid_bash():
    import subprocess

    script = Path(__file__).resolve().parents[2] / "scripts" / "build-llama-cpp.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)


def fake_manifest(quant: str = "Q4_K_M") -> dict:
    return {
        "quantization": {"requested": quant, "fallbacks": {"blk.0.attn_q.weight": "Q5_0"}, "tensor_types": {}},
        "text_model": {"file": f"edugraph-{quant}.gguf", "size_bytes": 2**20, "tensor_count": 24,
                       "tensor_types": {"Q4_K": 10, "F32": 14}},
        "mmproj": {"file": "mmproj-edugraph-F16.gguf", "size_bytes": 2**19, "tensor_count": 40,
                   "tensor_types": {"F16": 20, "F32": 20}},
        "image_tokens": {"image_min_tokens": 4, "image_max_tokens": 64},
    }


def test_card_and_repo_name():
    assert gguf_repo_id("edugraph/labeller") == "edugraph/labeller-GGUF"
    assert gguf_repo_id("edugraph/labeller-GGUF") == "edugraph/labeller-GGUF"
    card = render_gguf_card(fake_manifest(), "edugraph/labeller-GGUF", "edugraph/labeller", {"ontology_version": "v0.21.0"})
    assert "base_model_relation: quantized" in card and "**Q4_K_M**" in card
    assert "--image-max-tokens 64" in card and "fallback type" in card and "v0.21.0" in card


@pytest.mark.filterwarnings("ignore:Use .content=<...>. to upload raw bytes:DeprecationWarning")
def test_publish_gguf_to_the_local_hub(hub, tmp_path):
    folder = tmp_path / "gguf"
    folder.mkdir()
    manifest = fake_manifest()
    (folder / convert.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    (folder / manifest["text_model"]["file"]).write_bytes(b"GGUF" + b"\1" * 4096)
    (folder / manifest["mmproj"]["file"]).write_bytes(b"GGUF" + b"\2" * 4096)
    (folder / "ontology.json").write_text("{}", encoding="utf-8")
    repo = "edugraph/labeller-GGUF"
    result = publish_gguf(folder, repo, TOKEN, hub.endpoint, base_repo="edugraph/labeller")
    assert result.created_commit
    files = hub.files(repo)
    assert files["edugraph-Q4_K_M.gguf"].startswith(b"GGUF") and "README.md" in files
    assert b"edugraph/labeller" in files["README.md"]
    again = publish_gguf(folder, repo, TOKEN, hub.endpoint, base_repo="edugraph/labeller")
    assert not again.created_commit and again.commit_id == result.commit_id


def test_asset_fails_clearly_without_the_build(tmp_path, monkeypatch):
    from edugraph_pipeline.defs.model.gguf import gguf_model
    from edugraph_pipeline.defs.resources import ArtifactStoreResource
    from edugraph_pipeline.storage import ArtifactStore

    store = ArtifactStore(tmp_path / "out")
    with store.publish("merged_model", None, {"ontology_version": "v0.21.0"}) as staging:
        model_like_folder(staging)
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "no-llama"))
    result = dg.materialize(
        [gguf_model],
        resources={"artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out"))},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "build-llama-cpp.sh" in failure.message
    assert not (tmp_path / "out" / "gguf_model").exists() or not any((tmp_path / "out" / "gguf_model").iterdir())


@pytest.mark.parametrize(
    ("config", "expected"),
    [({}, "EDUGRAPH_GGUF_QUANT: unknown GGUF quantization 'Q3_XYZ'"),
     ({"quant": "q2_zz"}, "config field 'quant': unknown GGUF quantization 'Q2_ZZ'")],
)
def test_a_bad_quantization_fails_naming_where_it_came_from(tmp_path, monkeypatch, config, expected):
    from edugraph_pipeline.defs.model.gguf import gguf_model
    from edugraph_pipeline.defs.resources import ArtifactStoreResource
    from edugraph_pipeline.storage import ArtifactStore

    with ArtifactStore(tmp_path / "out").publish("merged_model", None, {"ontology_version": "v0.21.0"}) as staging:
        model_like_folder(staging)
    monkeypatch.setenv("EDUGRAPH_GGUF_QUANT", "q3_xyz")  # read when the run starts, not when the asset is defined
    result = dg.materialize(
        [gguf_model],
        resources={"artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out"))},
        run_config={"ops": {"gguf_model": {"config": config}}},
        raise_on_error=False,
    )
    assert not result.success
    assert expected in result.get_step_failure_events()[0].step_failure_data.error.message


@pytest.mark.filterwarnings("ignore:Use .content=<...>. to upload raw bytes:DeprecationWarning")
def test_gguf_publication_asset_needs_a_passed_gate_and_current_files(hub, tmp_path):
    from edugraph_pipeline.defs.publication.gguf import gguf_publication
    from edugraph_pipeline.defs.resources import ArtifactStoreResource, HubPublisher
    from edugraph_pipeline.storage import ArtifactStore, folder_sha256

    store = ArtifactStore(tmp_path / "out")
    with store.publish("merged_model", None, {"ontology_version": "v0.21.0"}) as staging:
        model_like_folder(staging)
    merged = folder_sha256(store.current("merged_model") / "model")
    manifest = fake_manifest("Q8_0")
    with store.publish("gguf_model", None, {"merged_model_version": merged, "quant": "Q8_0"}) as staging:
        (staging / convert.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        (staging / manifest["text_model"]["file"]).write_bytes(b"GGUF" + b"\1" * 1024)
        (staging / manifest["mmproj"]["file"]).write_bytes(b"GGUF" + b"\2" * 1024)

    def evaluation(passed: bool) -> None:
        with store.publish("model_evaluation", None, {}) as staging:
            (staging / "evaluation.json").write_text(
                json.dumps({"ontology_version": "v0.21.0", "passed": passed, "model_version": merged}), encoding="utf-8"
            )

    resources = {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "out")),
        "hub": HubPublisher(repo_id="edugraph/labeller", endpoint=hub.endpoint, token=TOKEN),
    }
    evaluation(False)
    refused = dg.materialize([gguf_publication], resources=resources, raise_on_error=False)
    assert not refused.success and hub.head("edugraph/labeller-GGUF") is None
    assert "failed its evaluation gate" in refused.get_step_failure_events()[0].step_failure_data.error.message
    evaluation(True)
    ok = dg.materialize([gguf_publication], resources=resources)
    [event] = ok.asset_materializations_for_node("gguf_publication")
    assert event.metadata["repo_id"].value == "edugraph/labeller-GGUF"
    assert "edugraph-Q8_0.gguf" in hub.files("edugraph/labeller-GGUF")
    with store.publish("merged_model", None, {"ontology_version": "v0.21.0"}) as staging:  # a newer merge
        (model_like_folder(staging) / "model.safetensors").write_bytes(b"\1" * 16)
    stale = dg.materialize([gguf_publication], resources=resources, raise_on_error=False)
    assert not stale.success
    assert "materialize gguf_model again" in stale.get_step_failure_events()[0].step_failure_data.error.message
