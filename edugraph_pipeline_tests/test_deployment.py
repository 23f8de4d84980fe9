"""The production instance runs (issue 15): `deploy/dagster.yaml` on a real PostgreSQL server (`.ci/start-postgres.sh`)
with the artifact store on the GCS emulator. One "machine" materializes the tiny DAG's dataset assets and
`base_model`; a second one - a separate `dagster asset materialize` process with an empty cache, as a run in its
own container is - trains `knowledge_adapter` (test mode) from what the bucket holds; a third reads the lineage
back from Postgres with `edugraph lineage`. A fourth process, with yet another cache dir, asks for the same training
job and reuses B's adapter: job identities name the store's artifacts, not a machine's mirror paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest

from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.resources import default_resources
from edugraph_pipeline.storage import open_store
from edugraph_pipeline_tests.conftest import PIPELINE_ASSETS, skip_or_fail
from edugraph_pipeline_tests.kit.gcp import StorageEmulator

REPO_ROOT = Path(__file__).resolve().parents[1]
PG_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")
BUCKET = "edugraph-deploy-test"
URL = f"gs://{BUCKET}/prod"
TAG = "v0.21.0"
DATASETS = ["ontology_release", "knowledge_dataset", "worksheet_dataset"]


@pytest.fixture
def postgres_database():
    """A fresh database on the server `.ci/start-postgres.sh` started (its DAGSTER_PG_* variables), dropped after."""
    missing = [name for name in PG_VARIABLES if not os.environ.get(name)]
    if missing:
        skip_or_fail(f"no PostgreSQL server: {', '.join(missing)} unset (run `eval \"$(.ci/start-postgres.sh)\"`)")
    import psycopg2

    server = {"host": os.environ["DAGSTER_PG_HOST"], "port": int(os.environ["DAGSTER_PG_PORT"]),
              "user": os.environ["DAGSTER_PG_USER"], "password": os.environ["DAGSTER_PG_PASSWORD"]}
    try:
        admin = psycopg2.connect(dbname=os.environ["DAGSTER_PG_DB"], connect_timeout=10, **server)
    except psycopg2.OperationalError as error:
        skip_or_fail(f"PostgreSQL at {server['host']}:{server['port']} does not answer: {error}")
    admin.autocommit = True
    name = f"edugraph_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def test_the_tiny_dag_runs_on_postgres_with_the_store_in_gcs(tmp_path, monkeypatch, postgres_database,
                                                              ontology_remote):
    database = postgres_database
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    with StorageEmulator(BUCKET) as gcs:
        environment = {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_DB": database,
            "STORAGE_EMULATOR_HOST": gcs.host,
            "EDUGRAPH_DATA_DIR": URL,
            "EDUGRAPH_ONTOLOGY_REPO": str(ontology_remote),
            "EDUGRAPH_CONTENT_SOURCE": "sample",
            "EDUGRAPH_SAMPLE_COUNT": "8",
            "EDUGRAPH_MODEL": "tiny",
            "EDUGRAPH_RUN_MODE": "test",
            "EDUGRAPH_DEVICE": "cpu",
            "EDUGRAPH_TRAINING_LAUNCHER": "local",
            "EDUGRAPH_KNOWLEDGE_ADAPTER": "",
            "EDUGRAPH_CODE_IMAGE": "edugraph-codelocation:test",  # read by the run launcher, never started here
            "EDUGRAPH_DOCKER_RUN_NETWORK": "bridge",
        }
        for name in ("EDUGRAPH_HF_REPO", "EDUGRAPH_HF_KNOWLEDGE_REPO", "EDUGRAPH_HF_WORKSHEETS_REPO", "HF_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)

        # Machine A: the code location's own resources (from the environment), the production instance.
        monkeypatch.setenv("EDUGRAPH_CACHE_DIR", str(tmp_path / "machine-a"))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_launcher).__name__ == "DockerRunLauncher"
            assert instance.run_storage.__class__.__module__.startswith("dagster_postgres")
            instance.add_dynamic_partitions(ontology_partitions.name, [TAG])
            resources = default_resources()
            assert dg.materialize(PIPELINE_ASSETS, selection=["base_model"], resources=resources,
                                  instance=instance).success
            assert dg.materialize(PIPELINE_ASSETS, selection=DATASETS, partition_key=TAG, resources=resources,
                                  instance=instance).success

        # Machine B: another process, an empty cache; everything it reads comes from the bucket and Postgres.
        machine_b = {**os.environ, "EDUGRAPH_CACHE_DIR": str(tmp_path / "machine-b")}
        dagster = Path(sys.executable).with_name("dagster")
        done = subprocess.run(
            [str(dagster), "asset", "materialize", "-m", "edugraph_pipeline.definitions", "--select",
             "knowledge_adapter"],
            env=machine_b, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        mirror = tmp_path / "machine-b" / "artifacts"
        # it materialised its inputs from the bucket (the dataset and the base model), not from machine A
        assert (mirror / "knowledge_dataset" / TAG).is_symlink() and (mirror / "base_model" / "latest").is_symlink()
        trained = open_store(URL, cache_dir=tmp_path / "machine-d").lineage("knowledge_adapter")
        assert str(tmp_path) not in json.dumps(trained)  # lineage names the bucket, no machine's mirror path

        # Machine B2: the same job from another process with another cache dir. The job identity names inputs as
        # the store does (not by mirror path), so it reuses the adapter B published instead of training again.
        machine_b2 = {**os.environ, "EDUGRAPH_CACHE_DIR": str(tmp_path / "machine-b2")}
        again = subprocess.run(
            [str(dagster), "asset", "materialize", "-m", "edugraph_pipeline.definitions", "--select",
             "knowledge_adapter"],
            env=machine_b2, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
        )
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-5000:]
        assert "not retraining" in again.stdout + again.stderr
        reused = open_store(URL, cache_dir=tmp_path / "machine-e").lineage("knowledge_adapter")
        assert reused["created_at"] == trained["created_at"] and reused["job_identity"] == trained["job_identity"]

        # Machine C: the lineage of B's run, read back from Postgres by the CLI.
        machine_c = {**os.environ, "EDUGRAPH_CACHE_DIR": str(tmp_path / "machine-c")}
        shown = subprocess.run(
            [sys.executable, "-m", "edugraph_pipeline", "lineage", "knowledge_adapter", "--json"],
            env=machine_c, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        assert shown.returncode == 0, shown.stderr[-3000:]
        chain = json.loads(shown.stdout)
        assert chain["asset"] == "knowledge_adapter"
        upstream = {(node["asset"], node["partition"]) for node in _walk(chain)}
        assert {("knowledge_dataset", TAG), ("ontology_release", TAG), ("base_model", None)} <= upstream

        # The runs are Postgres's: a fresh instance object on the same database sees all four.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert len(instance.get_runs()) == 4
        # and the artifacts the bucket's: the adapter machine B trained is current there, with its lineage
        store = open_store(URL, cache_dir=tmp_path / "machine-d")
        assert store.lineage("knowledge_adapter")["ontology_version"] == TAG
        assert store.lineage("knowledge_dataset", TAG)["asset"] == "knowledge_dataset"


def _walk(node: dict):
    yield node
    for parent in node["parents"]:
        yield from _walk(parent)
