import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from edugraph_pipeline.definitions import defs as load_definitions
from edugraph_pipeline.settings import SETTINGS, describe_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_with_the_pipeline_graph():
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"ontology_release", "knowledge_dataset"} <= keys
    assert graph.get(dg.AssetKey("knowledge_dataset")).parent_keys == {dg.AssetKey("ontology_release")}
    assert defs.resolve_sensor_def("ontology_release_sensor")
    assert defs.resolve_schedule_def("newest_release_schedule")
    assert defs.resolve_job_def("ontology_release_job")


def test_readme_documents_every_setting():
    readme = (REPO_ROOT / "README.md").read_text()
    assert describe_settings() in readme, "README's configuration table is stale: paste `edugraph settings`"
    assert all(f"`{setting.name}`" in readme for setting in SETTINGS)


def test_cli_syncs_partitions_and_materializes_a_release(tmp_path, ontology_remote):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "EDUGRAPH_ONTOLOGY_REPO": str(ontology_remote),
        "EDUGRAPH_DATA_DIR": str(tmp_path / "out"),
    }
    (tmp_path / "home").mkdir()
    bin_dir = Path(sys.executable).parent
    sync = subprocess.run([bin_dir / "edugraph", "releases", "sync"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert sync.returncode == 0, sync.stderr
    assert "52 new ontology release partition(s) added" in sync.stdout

    run = subprocess.run(
        [bin_dir / "dagster", "asset", "materialize", "-m", "edugraph_pipeline.definitions",
         "--select", "ontology_release,knowledge_dataset", "--partition", "v0.21.0"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RUN_SUCCESS" in run.stderr
    assert (tmp_path / "out" / "knowledge_dataset" / "v0.21.0" / "dataset" / "state.json").exists()


def test_malformed_settings_name_the_variable(monkeypatch):
    import pytest

    from edugraph_pipeline import settings
    from edugraph_pipeline.defs.resources import default_resources

    monkeypatch.setenv("EDUGRAPH_SAMPLE_COUNT", "two hundred")
    with pytest.raises(ValueError, match=r"EDUGRAPH_SAMPLE_COUNT='two hundred': expected an integer"):
        default_resources()
    monkeypatch.setenv("EDUGRAPH_SAMPLE_COUNT", "12")
    assert settings.integer("EDUGRAPH_SAMPLE_COUNT") == 12
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "docker")
    monkeypatch.setenv("EDUGRAPH_DOCKER_GPUS", "maybe")
    with pytest.raises(ValueError, match=r"EDUGRAPH_DOCKER_GPUS='maybe': expected one of 1, true"):
        default_resources()
    monkeypatch.setenv("EDUGRAPH_DOCKER_GPUS", "off")
    assert default_resources()["training_launcher"].gpus is False
    monkeypatch.setenv("EDUGRAPH_TRAINING_LAUNCHER", "slurm")
    with pytest.raises(ValueError, match=r"EDUGRAPH_TRAINING_LAUNCHER='slurm': expected local, docker, gcp or vertex"):
        default_resources()


def test_importing_the_code_location_reads_no_environment(tmp_path):
    """A malformed setting does not break the import; it fails when Dagster loads the definitions, naming it."""
    env = {**os.environ, "EDUGRAPH_SAMPLE_COUNT": "two hundred"}
    code = (
        "import edugraph_pipeline.definitions as d\n"
        "print('imported')\n"
        "d.defs()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "imported"
    assert done.returncode != 0 and "EDUGRAPH_SAMPLE_COUNT='two hundred': expected an integer" in done.stderr


def test_resources_bind_set_variables_as_env_vars(monkeypatch, tmp_path):
    from edugraph_pipeline.defs.resources import default_resources

    monkeypatch.setenv("EDUGRAPH_DATA_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("EDUGRAPH_SAMPLE_COUNT", "12")
    monkeypatch.delenv("EDUGRAPH_CONTENT_SOURCE", raising=False)
    resources = default_resources()
    assert resources["artifact_store"].data_dir == dg.EnvVar("EDUGRAPH_DATA_DIR")
    assert resources["content_source"].sample_count == dg.EnvVar.int("EDUGRAPH_SAMPLE_COUNT")
    assert resources["content_source"].source == "sample"  # unset: the setting's default, a plain value
    with dg.build_resources({"artifact_store": resources["artifact_store"]}) as built:
        assert built.artifact_store.store().root == tmp_path / "out"


def test_the_hub_resource_binds_set_variables_as_env_vars(monkeypatch):
    from edugraph_pipeline.defs.resources import default_resources

    for name in ("EDUGRAPH_HF_KNOWLEDGE_REPO", "EDUGRAPH_HF_PRIVATE", "HF_ENDPOINT", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDUGRAPH_HF_REPO", "acme/labeller")
    monkeypatch.setenv("EDUGRAPH_HF_WORKSHEETS_REPO", "acme/worksheets")
    monkeypatch.setenv("HF_TOKEN", "hf_DefinitionsTestToken0123456789")
    monkeypatch.setenv("EDUGRAPH_CODE_VERSION", "release-7")
    hub = default_resources()["hub"]
    assert (hub.repo_id, hub.worksheets_repo) == (dg.EnvVar("EDUGRAPH_HF_REPO"), dg.EnvVar("EDUGRAPH_HF_WORKSHEETS_REPO"))
    assert hub.token == dg.EnvVar("HF_TOKEN") and hub.code_version == dg.EnvVar("EDUGRAPH_CODE_VERSION")
    # unset: the setting's default (or the model namespace's default repository) as a plain value
    assert (hub.knowledge_repo, hub.endpoint, hub.private) == ("acme/edugraph-knowledge", "https://huggingface.co",
                                                               "false")
    with dg.build_resources({"hub": hub}) as built:
        assert (built.hub.repo_id, built.hub.code_version, built.hub.is_private) == ("acme/labeller", "release-7", False)


def test_dg_sees_every_definition_under_defs():
    dg_cli = Path(sys.executable).parent / "dg"
    check = subprocess.run([dg_cli, "check", "defs"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    assert "All definitions loaded successfully" in check.stdout + check.stderr
    listed = subprocess.run([dg_cli, "list", "defs", "--json"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    import json

    defs = json.loads(listed.stdout)
    assert {asset["asset_key"] for asset in defs["assets"]} >= {"ontology_release", "trained_adapter", "hf_publication"}
    assert {sensor["name"] for sensor in defs["sensors"]} == {"ontology_release_sensor", "content_release_sensor"}
    assert {job["name"] for job in defs["jobs"]} >= {"ontology_release_job", "full_pipeline_job"}
