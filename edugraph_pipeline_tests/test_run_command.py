"""`edugraph run` (what `make run` runs) offline: the whole graph for the newest release of a local ontology remote
in a persistent Dagster instance, with its progress and summary; a second run reuses everything; an unreachable
remote fails at once, naming EDUGRAPH_ONTOLOGY_REPO, before anything is written."""

from __future__ import annotations

import re
import shutil
import socket
import time

import dagster as dg
import pytest

from edugraph_pipeline import cli
from edugraph_pipeline_tests.conftest import REPO_ROOT

TAG = "v0.21.0"
TRAINED = ("base_model", "knowledge_adapter", "trained_adapter")
# Settings a developer's shell may carry that would change what the command does.
CLEARED = (
    "DAGSTER_HOME", "EDUGRAPH_DATA_DIR", "EDUGRAPH_CACHE_DIR", "EDUGRAPH_MODEL", "EDUGRAPH_BASE_MODEL",
    "EDUGRAPH_TRAINING_LAUNCHER", "EDUGRAPH_CONTENT_SOURCE", "EDUGRAPH_KNOWLEDGE_ADAPTER", "EDUGRAPH_DEVICE",
    "EDUGRAPH_HF_REPO", "EDUGRAPH_HF_KNOWLEDGE_REPO", "EDUGRAPH_HF_WORKSHEETS_REPO", "HF_TOKEN",
)


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch):
    """A folder standing in for a fresh clone's root (its dagster.yaml, no .env), as the working directory, with
    the defaults: DAGSTER_HOME and the data dir unset (the current directory and ./out); the test run mode keeps
    the training short."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDUGRAPH_RUN_MODE", "test")
    monkeypatch.setenv("EDUGRAPH_SAMPLE_COUNT", "48")
    return tmp_path


def step_lines(out: str, step: str) -> list[str]:
    return re.findall(rf"^\[ *\d+:\d\d\] = {step} succeeded \(\d+:\d\d\)(.*)$", out, flags=re.M)


def test_edugraph_run_builds_the_graph_then_reuses_everything(fresh_clone, ontology_remote, monkeypatch, capsys):
    monkeypatch.setenv("EDUGRAPH_ONTOLOGY_REPO", str(ontology_remote))

    code = cli.main(["run"])
    out, err = capsys.readouterr()
    # The test run mode trains a few steps: the model is built and evaluated, and the tiny gate rejects it.
    assert code == 1, err
    assert "failed its evaluation gate" in err
    assert f"edugraph run: ontology {TAG} (newest of 52 releases of {ontology_remote}; 52 new partition(s))" in out
    # Progress: every step's start and end, and the training steps' lines sent through Dagster Pipes.
    for step in ("ontology_release", "knowledge_dataset", "worksheet_dataset", *TRAINED, "merged_model"):
        assert f"] > {step}" in out
        assert step_lines(out, step) == [""], step  # built, not reused
    assert "training job: stage worksheet" in out and "training started: " in out
    assert re.search(r"pretrain step 4/4 loss \d", out)
    # The summary: artifacts, the evaluation's table, one classified example, the lineage, the UI.
    data = fresh_clone / "out"
    assert f"Artifacts under {data}:" in out
    assert f"worksheet_dataset  {data / 'worksheet_dataset' / TAG}" in out
    assert re.search(r"Evaluation of the merged model on the validation split \(\d+ rows; gate tiny: failed", out)
    assert "| exact_match |" in out
    example = re.search(r"expected: (\{.*\})\n  model:    (\{.*\})", out)
    assert example, out
    assert "Lineage of merged_model (edugraph lineage):" in out and f"ontology_version: {TAG}" in out
    assert f"DAGSTER_HOME={fresh_clone} dagster dev" in out and "http://127.0.0.1:3000" in out
    # The run is in the persistent instance (the current directory), where `dagster dev` shows it.
    with dg.DagsterInstance.from_config(str(fresh_clone)) as instance:
        [first] = instance.get_runs()
        assert first.tags["edugraph/launched_by"] == "edugraph run"
    adapter = data / "trained_adapter" / "latest" / "adapter" / "adapter_model.safetensors"
    trained_at = adapter.stat().st_mtime_ns

    # Nothing changed: nothing is trained, pretrained or merged again.
    assert cli.main(["run"]) == 1
    again = capsys.readouterr().out
    assert "new partition" not in again
    for step in (*TRAINED, "merged_model"):
        assert step_lines(again, step) == [", reused"], step
    assert "training job:" not in again and "pretrain step" not in again
    assert adapter.stat().st_mtime_ns == trained_at
    with dg.DagsterInstance.from_config(str(fresh_clone)) as instance:
        assert len(instance.get_runs()) == 2


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_ontology_remote_fails_at_once_naming_the_variable(fresh_clone, monkeypatch, capsys):
    remote = f"http://127.0.0.1:{closed_port()}/edugraph-ontology.git"
    monkeypatch.setenv("EDUGRAPH_ONTOLOGY_REPO", remote)
    start = time.monotonic()
    assert cli.main(["run"]) == 2
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err
    assert f"error: EDUGRAPH_ONTOLOGY_REPO={remote} cannot be reached" in err
    assert "export EDUGRAPH_ONTOLOGY_REPO=" in err  # how to point it at a local mirror
    # the mirror command it names is the README's, runnable as written from the repository root
    mirror = ".venv/bin/python -m edugraph_pipeline_tests.kit.remotes ../shared/ontology-releases /tmp/edugraph-ontology"
    assert mirror in err and mirror in (REPO_ROOT / "README.md").read_text()
    assert not (fresh_clone / "storage").exists() and not (fresh_clone / "out").exists()  # nothing written


def test_a_malformed_setting_fails_before_the_run_naming_it(fresh_clone, ontology_remote, monkeypatch, capsys):
    monkeypatch.setenv("EDUGRAPH_ONTOLOGY_REPO", str(ontology_remote))
    monkeypatch.setenv("EDUGRAPH_SAMPLE_COUNT", "two hundred")
    assert cli.main(["run"]) == 2
    assert "error: EDUGRAPH_SAMPLE_COUNT='two hundred': expected an integer" in capsys.readouterr().err
    assert not (fresh_clone / "storage").exists()  # no run was started
