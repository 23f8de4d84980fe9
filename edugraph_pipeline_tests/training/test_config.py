"""Model profiles, run modes, the training run config (the one place an empty field takes its setting) and the
JSON round trip of stage configs (what travels through Pipes extras)."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from edugraph_pipeline.defs.training.run_config import TrainingConfig
from edugraph_pipeline.training.profiles import PROFILES, StageConfig, profile, stage_config


def test_profiles_follow_upstream_hyperparameters(monkeypatch):
    monkeypatch.delenv("EDUGRAPH_BASE_MODEL", raising=False)
    for size in ("2b", "4b", "8b"):
        assert profile(size).base_model == f"Qwen/Qwen3-VL-{size.upper()}-Instruct"
        monkeypatch.setenv("EDUGRAPH_MODEL", size)
        assert TrainingConfig().resolve().profile.base_model == f"Qwen/Qwen3-VL-{size.upper()}-Instruct"
    four, eight = PROFILES["4b"], PROFILES["8b"]
    assert (four.knowledge.r, four.knowledge.alpha, four.knowledge.dropout, four.knowledge.lr, four.knowledge.epochs) == (
        8, 16, 0.05, 2e-4, 2)
    assert (four.worksheet.r, four.worksheet.alpha, four.worksheet.dropout, four.worksheet.epochs) == (64, 128, 0.1, 2)
    assert (eight.knowledge.r, eight.knowledge.alpha, eight.knowledge.dropout, eight.knowledge.epochs) == (16, 32, 0.1, 3)
    assert (eight.worksheet.r, eight.worksheet.alpha, eight.worksheet.epochs) == (64, 128, 3)
    tiny = PROFILES["tiny"]
    assert tiny.base_model is None and tiny.worksheet.r == 16 and tiny.worksheet.lr == 2e-3
    assert tiny.worksheet.lr_scheduler == "cosine"


def resolved_stage_config():
    """A worksheet stage config as the training assets build it: from what the run config resolved."""
    choice = TrainingConfig().resolve()
    return stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o", prof=choice.profile,
                        mode=choice.run_mode, device=choice.device)


def test_environment_selects_profile_base_and_mode(monkeypatch):
    for name in ("EDUGRAPH_MODEL", "EDUGRAPH_BASE_MODEL", "EDUGRAPH_RUN_MODE", "EDUGRAPH_DEVICE",
                 "EDUGRAPH_LORA_TARGETS", "EDUGRAPH_TRAINING_PLACEMENT", "EDUGRAPH_CHECKPOINT_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    defaults = TrainingConfig().resolve()  # every default is its setting's
    assert defaults.as_record() == {"profile": "tiny", "run_mode": "train", "device": "auto",
                                    "lora_targets": PROFILES["tiny"].lora_targets, "placement_override": ""}
    assert defaults.save_minutes == 10.0
    assert defaults.profile == PROFILES["tiny"]
    monkeypatch.setenv("EDUGRAPH_MODEL", "4b")
    monkeypatch.setenv("EDUGRAPH_BASE_MODEL", "/models/my-qwen")
    chosen = TrainingConfig().resolve().profile
    assert chosen.base_model == "/models/my-qwen" and chosen.worksheet.r == 64
    assert profile("4b", "/models/my-qwen") == chosen
    monkeypatch.setenv("EDUGRAPH_MODEL", "70b")
    with pytest.raises(dg.Failure, match="EDUGRAPH_MODEL='70b'"):
        TrainingConfig().resolve()
    with pytest.raises(ValueError, match="EDUGRAPH_MODEL='70b'"):
        profile("70b")
    monkeypatch.setenv("EDUGRAPH_MODEL", "tiny")
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "test")
    cfg = resolved_stage_config()
    assert cfg.lora.epochs == 1 and cfg.max_train_samples == 16
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "train")
    assert resolved_stage_config().max_train_samples is None
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "fast")
    with pytest.raises(dg.Failure, match="EDUGRAPH_RUN_MODE"):
        resolved_stage_config()
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "train")
    monkeypatch.setenv("EDUGRAPH_DEVICE", "tpu")
    with pytest.raises(dg.Failure, match=r"EDUGRAPH_DEVICE='tpu': expected one of auto, cpu, cuda"):
        resolved_stage_config()


def test_stage_config_takes_its_choices_as_arguments_and_checks_them(monkeypatch):
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "test")  # not read: the caller decides
    monkeypatch.setenv("EDUGRAPH_DEVICE", "cpu")
    cfg = stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o", prof=profile("tiny"),
                       mode="train")
    assert cfg.max_train_samples is None and cfg.device == "auto" and cfg.lora == PROFILES["tiny"].worksheet
    with pytest.raises(ValueError, match=r"EDUGRAPH_RUN_MODE='fast': expected one of test, train"):
        stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o", prof=profile("tiny"),
                     mode="fast")
    with pytest.raises(ValueError, match=r"EDUGRAPH_DEVICE='tpu': expected one of auto, cpu, cuda"):
        stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o", prof=profile("tiny"),
                     mode="train", device="tpu")


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
    from edugraph_pipeline.defs.training.run_config import WorksheetTrainingConfig
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
    monkeypatch.setenv("EDUGRAPH_MODEL", "4b")
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "train")
    monkeypatch.setenv("EDUGRAPH_BASE_MODEL", "/models/from-env")
    monkeypatch.delenv("EDUGRAPH_DEVICE", raising=False)
    from_env = TrainingConfig().resolve()
    assert (from_env.profile.name, from_env.run_mode, from_env.device) == ("4b", "train", "auto")
    assert from_env.profile.base_model == "/models/from-env"
    chosen = TrainingConfig(profile="TINY", run_mode="test", base_model="/models/mine", device="cpu").resolve()
    assert chosen.as_record() == {"profile": "tiny", "run_mode": "test", "device": "cpu",
                                  "lora_targets": PROFILES["tiny"].lora_targets, "placement_override": ""}
    assert chosen.profile.base_model == "/models/mine"
    with pytest.raises(dg.Failure, match=r"config field 'profile'='70b': expected one of tiny, 2b, 4b, 8b"):
        TrainingConfig(profile="70b").resolve()
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "fast")
    with pytest.raises(dg.Failure, match=r"EDUGRAPH_RUN_MODE='fast': expected one of test, train"):
        TrainingConfig().resolve()


def test_lora_targets_placement_and_checkpoint_clock_resolve_once_and_reach_the_stage_config(monkeypatch):
    from edugraph_pipeline.training.job import TrainingJob
    from edugraph_pipeline.training.lora_targets import LANGUAGE_MODEL_LINEAR, target_modules

    for name in ("EDUGRAPH_LORA_TARGETS", "EDUGRAPH_TRAINING_PLACEMENT", "EDUGRAPH_CHECKPOINT_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    assert TrainingConfig(profile="4b").resolve().lora_targets == PROFILES["4b"].lora_targets  # the profile's
    monkeypatch.setenv("EDUGRAPH_LORA_TARGETS", "all-linear")
    monkeypatch.setenv("EDUGRAPH_TRAINING_PLACEMENT", "gradient_checkpointing=OFF, precision=nf4")
    monkeypatch.setenv("EDUGRAPH_CHECKPOINT_MINUTES", "2.5")
    chosen = TrainingConfig(profile="4b").resolve()
    # one spelling of the override, so the same choice makes the same job identity
    assert (chosen.lora_targets, chosen.placement, chosen.save_minutes) == (
        "all-linear", "precision=nf4,gradient_checkpointing=off", 2.5)
    assert TrainingConfig(profile="4b", lora_targets="language", placement="micro_batch=1").resolve().as_record()[
        "lora_targets"] == "language"
    cfg = stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o", prof=chosen.profile,
                       mode="train", lora_targets=chosen.lora_targets, placement=chosen.placement,
                       save_minutes=chosen.save_minutes)
    assert (cfg.lora_targets, cfg.placement, cfg.save_minutes) == ("all-linear", chosen.placement, 2.5)
    # the clock decides nothing about the result: not part of the job's identity; the targets and override are
    job = TrainingJob(stage="worksheet", config=cfg)
    assert job.identity({}) == TrainingJob(stage="worksheet", config=cfg.with_(save_minutes=30)).identity({})
    assert job.identity({}) != TrainingJob(stage="worksheet", config=cfg.with_(lora_targets="language")).identity({})
    assert job.identity({}) != TrainingJob(stage="worksheet", config=cfg.with_(placement="")).identity({})
    assert target_modules("knowledge", "all-linear") == LANGUAGE_MODEL_LINEAR  # stage 1: the language model always
    assert target_modules("worksheet", "all-linear") == "all-linear"

    with pytest.raises(dg.Failure, match=r"config field 'lora_targets'='vision': expected one of language, all-linear"):
        TrainingConfig(lora_targets="vision").resolve()
    with pytest.raises(dg.Failure, match=r"config field 'placement'='precision=fp8': placement override"):
        TrainingConfig(placement="precision=fp8").resolve()
    monkeypatch.setenv("EDUGRAPH_TRAINING_PLACEMENT", "micro_batch=zero")
    with pytest.raises(dg.Failure, match=r"EDUGRAPH_TRAINING_PLACEMENT='micro_batch=zero'"):
        TrainingConfig().resolve()
    monkeypatch.delenv("EDUGRAPH_TRAINING_PLACEMENT")
    monkeypatch.setenv("EDUGRAPH_CHECKPOINT_MINUTES", "soon")
    with pytest.raises(dg.Failure, match=r"EDUGRAPH_CHECKPOINT_MINUTES='soon': expected a number"):
        TrainingConfig().resolve()
    monkeypatch.setenv("EDUGRAPH_CHECKPOINT_MINUTES", "-1")
    with pytest.raises(dg.Failure, match=r"EDUGRAPH_CHECKPOINT_MINUTES=-1.0: expected minutes >= 0"):
        TrainingConfig().resolve()
    with pytest.raises(ValueError, match=r"EDUGRAPH_LORA_TARGETS='vision'"):
        stage_config("worksheet", base_model="b", dataset_path="/d", output_dir="/o", prof=profile("4b"),
                     mode="train", lora_targets="vision")


def test_every_qwen3_5_profile_is_offered():
    for name, hub_id in (("qwen3.5-4b", "Qwen/Qwen3.5-4B"), ("qwen3.5-9b", "Qwen/Qwen3.5-9B"),
                         ("qwen3.5-27b", "Qwen/Qwen3.5-27B")):
        assert profile(name).base_model == hub_id
        assert TrainingConfig(profile=name.upper()).resolve().profile.name == name
    assert PROFILES["qwen3.5-4b"].worksheet == PROFILES["4b"].worksheet  # like the Qwen3-VL 4B
