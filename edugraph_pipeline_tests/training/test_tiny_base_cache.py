"""The tiny base cache: keyed on the tiny model's code and the pretraining config, written whole, checked before use,
and what `base_model` restores from instead of pretraining again (another data dir, same cache dir)."""

from __future__ import annotations

from dataclasses import asdict

import dagster as dg

from edugraph_pipeline.training.tiny_model import base_cache
from edugraph_pipeline.training.tiny_model.base_cache import TinyBaseCache, key_inputs, tiny_base_key
from edugraph_pipeline.training.tiny_model.pretraining import pretrain_config


def fake_model(folder, content: bytes = b"weights"):
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(content)
    (folder / "config.json").write_text("{}")
    return folder


def test_the_key_follows_the_code_the_config_and_the_libraries():
    inputs = key_inputs("train")
    assert inputs["code"] == base_cache.tiny_code_version() and len(inputs["code"]) == 16
    assert inputs["pretrain"] == asdict(pretrain_config("train"))
    assert set(inputs["libraries"]) == set(base_cache.LIBRARIES) and inputs["libraries"]["torch"] != "absent"
    assert tiny_base_key("train") == tiny_base_key("train") != tiny_base_key("test")
    # Every source file of the package is in the code version (a new module is too).
    hashed = {path.name for path in base_cache.PACKAGE.glob("*.py")}
    assert {"model.py", "pretraining.py", "pictures.py", "tokenizer.py", "base_cache.py"} <= hashed


def test_an_entry_round_trips_and_a_damaged_one_is_dropped(tmp_path):
    cache = TinyBaseCache(tmp_path / "cache", "test")
    assert cache.lookup() is None
    cache.save(fake_model(tmp_path / "built"), {"steps": 4, "data_version": "abc"})
    assert cache.folder == tmp_path / "cache" / "tiny-base" / tiny_base_key("test")
    assert cache.lookup() == {"steps": 4, "data_version": "abc"}
    cache.restore(tmp_path / "restored")
    assert (tmp_path / "restored" / "model.safetensors").read_bytes() == b"weights"
    # Nothing but the entry is left in the cache (the temporary folder was renamed into place).
    assert [p.name for p in cache.folder.parent.iterdir()] == [cache.key]

    # A second writer of the same key keeps the first entry.
    cache.save(fake_model(tmp_path / "other", b"other"), {"steps": 4, "data_version": "def"})
    assert cache.lookup()["data_version"] == "abc"

    (cache.folder / "model" / "model.safetensors").write_bytes(b"damaged")
    assert cache.lookup() is None and not cache.folder.exists()


def test_base_model_restores_the_cached_base_in_another_data_dir(tmp_path):
    from edugraph_pipeline.defs.resources import ArtifactStoreResource
    from edugraph_pipeline.defs.training.assets import base_model
    from edugraph_pipeline.defs.training.launchers import LocalLauncher

    shared_cache = tmp_path / "cache"
    config = {"ops": {"base_model": {"config": {"profile": "tiny", "run_mode": "test"}}}}

    def materialize(data_dir):
        resources = {
            "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / data_dir), cache_dir=str(shared_cache)),
            "training_launcher": LocalLauncher(),
        }
        with dg.instance_for_test() as instance:
            result = dg.materialize([base_model], resources=resources, instance=instance, run_config=config)
            logs = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
        [event] = result.asset_materializations_for_node("base_model")
        return event, logs, resources["artifact_store"].store()

    built, built_logs, first = materialize("first")
    assert "pretrain step 4/4" in built_logs and not built.metadata["reused"].value
    restored, logs, second = materialize("second")
    assert "from the cache" in logs and "pretrain step" not in logs and "training job" not in logs
    assert restored.metadata["reused"].value and restored.metadata["pretrain_steps"].value == 4
    assert restored.tags["dagster/data_version"] == built.tags["dagster/data_version"]
    model = "model/model.safetensors"
    assert (second.asset_dir("base_model") / model).read_bytes() == (first.asset_dir("base_model") / model).read_bytes()
    # The restored artifact is reused by the next run of that data dir like a pretrained one.
    again, again_logs, _ = materialize("second")
    assert again.metadata["reused"].value and "built by the same job" in again_logs
