"""The entry point without Pipes, and the training assets through `LocalLauncher` (Dagster Pipes subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg

from edugraph_pipeline.storage import VERSIONS

TAG = "v0.21.0"


def test_entrypoint_runs_a_job_file_without_pipes(stage_cfg, tmp_path):
    from edugraph_pipeline.training.job import TrainingJob

    cfg = stage_cfg("knowledge", max_steps=1, output_dir="")
    job = TrainingJob(stage="knowledge", config=cfg, log_every=1)
    job_file = tmp_path / "job.json"
    placed = job.placed(output_dir=str(tmp_path / "out"), work_dir=str(tmp_path / "work"))
    assert placed.decisive() == job.decisive()  # where it writes is not part of what it is
    job_file.write_text(json.dumps(placed.to_dict()))
    done = subprocess.run(
        [sys.executable, "-m", "edugraph_pipeline.training.entrypoint", "--job", str(job_file)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 1/1 loss" in done.stdout
    result = json.loads((tmp_path / "out" / "job_result.json").read_text())
    assert result["steps"] == 1 and len(result["data_version"]) == 24
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").exists()


def test_entrypoint_imports_no_dagster():
    code = (
        "import sys, edugraph_pipeline.training.entrypoint as e, edugraph_pipeline.training.sft, "
        "edugraph_pipeline.training.tiny_model; "
        "print(sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _publish_upstream(store, tiny_datasets):
    import shutil

    for asset, source in (("knowledge_dataset", "knowledge"), ("worksheet_dataset", "worksheets")):
        with store.publish(asset, TAG, {"ontology_version": TAG, "content_sha256": f"{asset}-fixture"}) as folder:
            shutil.copytree(tiny_datasets[source], folder / "dataset")


def test_training_assets_materialize_through_the_local_launcher(tiny_datasets, tmp_path, monkeypatch):
    from edugraph_pipeline.defs.resources import ArtifactStoreResource
    from edugraph_pipeline.defs.training.assets import base_model, knowledge_adapter, trained_adapter
    from edugraph_pipeline.defs.training.launchers import LocalLauncher

    # The run config decides, not the environment: these variables say otherwise (a 4B run in train mode).
    monkeypatch.setenv("EDUGRAPH_MODEL", "4b")
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "train")
    monkeypatch.delenv("EDUGRAPH_BASE_MODEL", raising=False)
    monkeypatch.delenv("EDUGRAPH_KNOWLEDGE_ADAPTER", raising=False)
    resources = {
        "artifact_store": ArtifactStoreResource(data_dir=str(tmp_path / "data")),
        "training_launcher": LocalLauncher(),
    }
    store = resources["artifact_store"].store()
    _publish_upstream(store, tiny_datasets)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("ontology_releases", [TAG])
        chosen = {"profile": "tiny", "run_mode": "test"}
        first = dg.materialize([base_model], resources=resources, instance=instance,
                               run_config={"ops": {"base_model": {"config": chosen}}})
        assert first.success
        base = store.asset_dir("base_model")
        assert (base / "model" / "model.safetensors").exists() and (base / "base_model.json").exists()
        base_meta = first.asset_materializations_for_node("base_model")[0].metadata
        assert base_meta["pretrain_steps"].value == 4 and base_meta["disk_mb"].value > 50

        # Not partitioned: the adapters learn from the newest release's datasets (the last partition).
        from edugraph_pipeline.defs.partitions import ontology_partitions

        upstream = [dg.AssetSpec(name, partitions_def=ontology_partitions) for name in ("knowledge_dataset", "worksheet_dataset")]
        # stage 2 with a placement override from its run config (the CPU honours the micro-batch), and the
        # environment's LoRA targets (the run config leaves them empty)
        monkeypatch.setenv("EDUGRAPH_LORA_TARGETS", "language")
        overridden = {**chosen, "placement": "micro_batch=2"}
        result = dg.materialize(
            [*upstream, knowledge_adapter, trained_adapter], resources=resources, instance=instance,
            selection=["knowledge_adapter", "trained_adapter"],
            run_config={"ops": {"knowledge_adapter": {"config": chosen}, "trained_adapter": {"config": overridden}}},
        )
        assert result.success
        recorded_config = instance.get_run_by_id(result.run_id).run_config["ops"]
        assert recorded_config["trained_adapter"]["config"] == overridden
        logs = "\n".join(e.user_message for e in instance.all_logs(result.run_id))
        assert "training started" in logs and "loss" in logs

        for asset in ("knowledge_adapter", "trained_adapter"):
            folder = store.asset_dir(asset)
            assert (folder / "adapter" / "adapter_model.safetensors").exists()
            # nothing left beside the published version: no half-built or retired version folders
            versions = folder.parent / VERSIONS / folder.name
            assert [p for p in versions.iterdir() if p.is_dir()] == [folder.resolve()]
            meta = result.asset_materializations_for_node(asset)[0].metadata
            assert meta["adapter_path"].value == str(folder / "adapter")
            for key in ("base_model", "base_model_revision", "upstream_versions", "hyperparameters",
                        "trainable_parameters", "steps", "wall_time_s", "samples_per_s", "tokens_per_s",
                        "peak_memory_mb", "device", "loss_curve", "loss_table"):
                assert key in meta, (asset, key)
            assert meta["loss_curve"].value.startswith("![loss curve](data:image/png;base64,")
            assert meta["steps"].value == 2
            # the placement decided in the step: in its metrics and, as a table, in the asset's metadata
            micro = 2 if asset == "trained_adapter" else 4
            placement = json.loads((folder / "job_result.json").read_text())["placement"]
            assert {k: placement[k] for k in ("device", "precision", "micro_batch", "grad_accum", "effective_batch",
                                              "gradient_checkpointing", "memory")} == {
                "device": "cpu", "precision": "fp32", "micro_batch": micro, "grad_accum": 4 // micro,
                "effective_batch": 4, "gradient_checkpointing": False, "memory": None}, asset
            assert placement["reason"].startswith("no CUDA device: the tiny profile trains on the CPU: fp32, "
                                                  f"micro-batch {micro} x {4 // micro} (effective 4)"), asset
            assert meta["precision"].value == "fp32"
            table = meta["placement"].value
            assert "| device | cpu |" in table and f"| micro-batch × accumulation | {micro} × {4 // micro} (effective 4) |" in table
            assert meta["hyperparameters"].value["batch_size"] == micro
            recorded = json.loads((folder / "lineage.json").read_text())
            assert recorded["data_version"] and recorded["ontology_version"] == TAG
            assert (recorded["profile"], recorded["run_mode"]) == ("tiny", "test")
            assert (meta["profile"].value, meta["run_mode"].value) == ("tiny", "test")
        trained_meta = result.asset_materializations_for_node("trained_adapter")[0].metadata
        assert trained_meta["knowledge_adapter_source"].value == "asset"
        assert (trained_meta["lora_targets"].value, trained_meta["placement_override"].value) == ("language",
                                                                                                  "micro_batch=2")
        assert trained_meta["hyperparameters"].value["lora_targets"] == "language"
        lineage = json.loads((store.asset_dir("trained_adapter") / "lineage.json").read_text())
        assert (lineage["lora_targets"], lineage["placement_override"]) == ("language", "micro_batch=2")
        assert trained_meta["upstream_versions"].value == {"worksheet_dataset": "worksheet_dataset-fixture"[:16]}
        # checkpoints lived in the work folder and were removed once published
        assert not any((store.root / ".work" / "trained_adapter").rglob("checkpoint-*"))

        version = instance.get_latest_data_version_record(dg.AssetKey("trained_adapter"))
        assert version is not None
