"""Session fixtures of the training tests: one tiny Qwen3-VL (built + briefly pretrained once) and tiny datasets.

Tests marked ``slow`` are skipped here unless ``-m`` selects them (``pytest -m slow``).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Training never reaches a hub; the training subprocesses inherit this (and fail fast if code tried)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def raw_tiny_model(tmp_path_factory) -> Path:
    from edugraph_pipeline.training.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "raw")


@pytest.fixture(scope="session")
def tiny_base(raw_tiny_model, tmp_path_factory) -> Path:
    """The raw tiny model after a 3-step pretraining (exercises `pretrain_tiny_model`)."""
    from edugraph_pipeline.training.tiny_model import PretrainConfig, pretrain_tiny_model

    out = tmp_path_factory.mktemp("tiny") / "base"
    pretrain_tiny_model(raw_tiny_model, out, PretrainConfig(steps=3, batch_size=2, n_images=4, log_every=1))
    return out


@pytest.fixture(scope="session")
def tiny_datasets(tmp_path_factory) -> dict[str, Path]:
    from edugraph_pipeline_tests.kit.synthetic import make_knowledge_dataset, make_worksheet_dataset

    root = tmp_path_factory.mktemp("datasets")
    make_knowledge_dataset(root / "knowledge", n=8)
    make_worksheet_dataset(root / "worksheets", n_train=8, n_validation=4)
    return {"knowledge": root / "knowledge", "worksheets": root / "worksheets"}


@pytest.fixture
def stage_cfg(tiny_base, tiny_datasets, tmp_path):
    """A factory of tiny StageConfigs (test mode, a couple of steps)."""
    from edugraph_pipeline.training.profiles import profile, stage_config

    def make(stage: str, **changes):
        cfg = stage_config(
            stage,
            base_model=str(tiny_base),
            dataset_path=str(tiny_datasets["knowledge" if stage == "knowledge" else "worksheets"]),
            output_dir=str(tmp_path / stage),
            prof=profile("tiny"),
            mode="test",
        )
        return cfg.with_(**{"max_steps": 2, "save_steps": 100, "batch_size": 2, **changes})

    return make
