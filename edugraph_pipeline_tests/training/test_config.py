"""Model profiles, run modes and the JSON round trip of stage configs (what travels through Pipes extras)."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from edugraph_pipeline.training.config import PROFILES, StageConfig, profile, stage_config


def test_profiles_follow_upstream_hyperparameters(monkeypatch):
    monkeypatch.delenv("EDUGRAPH_BASE_MODEL", raising=False)
    for size in ("2b", "4b", "8b"):
        monkeypatch.setenv("EDUGRAPH_MODEL", size)
        assert profile().base_model == f"Qwen/Qwen3-VL-{size.upper()}-Instruct"
    four, eight = PROFILES["4b"], PROFILES["8b"]
    assert (four.knowledge.r, four.knowledge.alpha, four.knowledge.dropout, four.knowledge.lr, four.knowledge.epochs) == (
        8, 16, 0.05, 2e-4, 2)
    assert (four.worksheet.r, four.worksheet.alpha, four.worksheet.dropout, four.worksheet.epochs) == (64, 128, 0.1, 2)
    assert (eight.knowledge.r, eight.knowledge.alpha, eight.knowledge.dropout, eight.knowledge.epochs) == (16, 32, 0.1, 3)
    assert (eight.worksheet.r, eight.worksheet.alpha, eight.worksheet.epochs) == (64, 128, 3)
    tiny = PROFILES["tiny"]
    assert tiny.base_model is None and tiny.worksheet.r == 16 and tiny.worksheet.lr == 2e-3
    assert tiny.worksheet.lr_scheduler == "cosine"


def test_environment_selects_profile_base_and_mode(monkeypatch):
    monkeypatch.delenv("EDUGRAPH_MODEL", raising=False)
    monkeypatch.delenv("EDUGRAPH_BASE_MODEL", raising=False)
    assert profile().name == "tiny"
    monkeypatch.setenv("EDUGRAPH_MODEL", "4b")
    monkeypatch.setenv("EDUGRAPH_BASE_MODEL", "/models/my-qwen")
    assert profile().base_model == "/models/my-qwen" and profile().worksheet.r == 64
    monkeypatch.setenv("EDUGRAPH_MODEL", "70b")
    with pytest.raises(ValueError, match="EDUGRAPH_MODEL"):
        profile()
    monkeypatch.setenv("EDUGRAPH_MODEL", "tiny")
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "test")
    cfg = stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o")
    assert cfg.lora.epochs == 1 and cfg.max_train_samples == 16
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "train")
    assert stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o").max_train_samples is None
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "fast")
    with pytest.raises(ValueError, match="EDUGRAPH_RUN_MODE"):
        stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o")


def test_stage_config_round_trips_through_json():
    cfg = stage_config(
        "knowledge", base_model="b", dataset_path="/d", output_dir="/o", prof=PROFILES["8b"], mode="train"
    )
    again = StageConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown"):
        StageConfig.from_dict({**cfg.to_dict(), "surprise": 1})


def test_knowledge_adapter_choice(monkeypatch, tmp_path):
    from edugraph_pipeline.defs.training.assets import _knowledge_adapter_for
    from edugraph_pipeline.defs.training.config import WorksheetTrainingConfig
    from edugraph_pipeline.storage import ArtifactStore

    def choice(**config) -> str:
        return WorksheetTrainingConfig(**config).stage_1_choice()

    store = ArtifactStore(tmp_path)
    monkeypatch.setenv("EDUGRAPH_KNOWLEDGE_ADAPTER", "none")
    assert _knowledge_adapter_for(store, "v0.21.0", choice()) == (None, "skipped")
    # the run config wins over the environment variable
    with pytest.raises(dg.Failure, match="materialize knowledge_adapter"):
        _knowledge_adapter_for(store, "v0.21.0", choice(knowledge_adapter="asset"))
    monkeypatch.setenv("EDUGRAPH_KNOWLEDGE_ADAPTER", str(tmp_path / "nowhere"))
    with pytest.raises(dg.Failure, match="no PEFT adapter"):
        _knowledge_adapter_for(store, "v0.21.0", choice())
    reuse = tmp_path / "reuse"
    reuse.mkdir()
    (reuse / "adapter_config.json").write_text("{}")
    monkeypatch.setenv("EDUGRAPH_KNOWLEDGE_ADAPTER", str(reuse))
    assert _knowledge_adapter_for(store, "v0.21.0", choice()) == (str(reuse.resolve()), "reused")
    assert _knowledge_adapter_for(store, "v0.21.0", choice(knowledge_adapter="none")) == (None, "skipped")
    monkeypatch.delenv("EDUGRAPH_KNOWLEDGE_ADAPTER")
    with pytest.raises(dg.Failure, match="materialize knowledge_adapter"):
        _knowledge_adapter_for(store, "v0.21.0", choice())




def test_run_config_wins_over_the_environment_and_bad_values_name_their_source(monkeypatch):
    from edugraph_pipeline.defs.training.config import TrainingConfig

    monkeypatch.setenv("EDUGRAPH_MODEL", "4b")
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "train")
    monkeypatch.setenv("EDUGRAPH_BASE_MODEL", "/models/from-env")
    monkeypatch.delenv("EDUGRAPH_DEVICE", raising=False)
    from_env = TrainingConfig().resolve()
    assert (from_env.profile.name, from_env.run_mode, from_env.device) == ("4b", "train", "auto")
    assert from_env.profile.base_model == "/models/from-env"
    chosen = TrainingConfig(profile="TINY", run_mode="test", base_model="/models/mine", device="cpu").resolve()
    assert chosen.as_record() == {"profile": "tiny", "run_mode": "test", "device": "cpu"}
    assert chosen.profile.base_model == "/models/mine"
    with pytest.raises(dg.Failure, match=r"config field 'profile'='70b': expected one of tiny, 2b, 4b, 8b"):
        TrainingConfig(profile="70b").resolve()
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "fast")
    with pytest.raises(dg.Failure, match=r"EDUGRAPH_RUN_MODE='fast': expected one of test, train"):
        TrainingConfig().resolve()
