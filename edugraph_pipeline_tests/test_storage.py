"""Kill-safe publication: a real subprocess publishing an artifact is SIGKILLed at each step of `publish`; readers
then load the previous artifact or the new complete one, and the next publication cleans up what the kill left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edugraph_pipeline.storage import LINEAGE_FILE, PUBLISH_STEPS, VERSIONS, ArtifactStore

ASSET = "merged_model"
# Publishes version N of ASSET with two files; at every step of `publish` (and half-way through writing its
# content) it reports the step on stdout and waits for a line on stdin, so that the test can kill it right there.
PUBLISHER = textwrap.dedent(
    """
    import sys
    from edugraph_pipeline.storage import ArtifactStore

    def pause(step):
        print(step, flush=True)
        sys.stdin.readline()

    root, version = sys.argv[1], int(sys.argv[2])
    store = ArtifactStore(root, on_step=pause)
    with store.publish("merged_model", None, {"version": version}) as folder:
        (folder / "config.json").write_text(str(version))
        pause("half-written")
        (folder / "weights.bin").write_bytes(bytes([version]) * 4096)
    print("done", flush=True)
    """
)
STEPS = ["staged", "half-written", *PUBLISH_STEPS[1:]]
VISIBLE_FROM = "committed"  # the first step at which the new version is what readers see


def publish_version(store: ArtifactStore, version: int) -> None:
    with store.publish(ASSET, None, {"version": version}) as folder:
        (folder / "config.json").write_text(str(version))
        (folder / "weights.bin").write_bytes(bytes([version]) * 4096)


def read_artifact(store: ArtifactStore) -> int:
    """What a reader loads, checked for being one complete version (no mix, nothing missing)."""
    folder = store.current(ASSET)
    version = json.loads((folder / LINEAGE_FILE).read_text())["version"]
    assert (folder / "config.json").read_text() == str(version)
    assert (folder / "weights.bin").read_bytes() == bytes([version]) * 4096
    assert store.lineage(ASSET)["version"] == version
    return version


class Publisher:
    def __init__(self, root: Path, version: int):
        self.process = subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(root), str(version)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def run_to(self, step: str) -> None:
        while (line := self.process.stdout.readline().strip()) != step:
            assert line, f"the publisher exited before step {step!r} (status {self.process.wait()})"
            self.resume()

    def resume(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def finish(self) -> None:
        out, _ = self.process.communicate("\n" * len(STEPS), timeout=60)
        assert self.process.returncode == 0 and out.strip().endswith("done")


def version_entries(root: Path) -> set[str]:
    return {entry.name for entry in (root / ASSET / VERSIONS / "latest").iterdir() if entry.name != ".commit.lock"}


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_any_step_leaves_the_previous_or_the_new_complete_artifact(tmp_path, step):
    store = ArtifactStore(tmp_path)
    publish_version(store, 1)
    publisher = Publisher(tmp_path, 2)
    publisher.run_to(step)
    publisher.kill()

    expected = 2 if STEPS.index(step) >= STEPS.index(VISIBLE_FROM) else 1
    assert read_artifact(store) == expected

    publish_version(store, 3)  # the next run publishes and removes what the killed one left
    assert read_artifact(store) == 3
    current = store.current(ASSET).name
    assert version_entries(tmp_path) == {current}
    assert [p.name for p in (tmp_path / ASSET).iterdir() if p.name not in (VERSIONS, "latest")] == []


def test_a_kill_while_migrating_a_plain_folder_keeps_it_readable(tmp_path):
    legacy = tmp_path / ASSET / "latest"  # the layout before versions: a plain folder
    legacy.mkdir(parents=True)
    (legacy / "config.json").write_text("1")
    (legacy / "weights.bin").write_bytes(bytes([1]) * 4096)
    (legacy / LINEAGE_FILE).write_text(json.dumps({"version": 1}))
    store = ArtifactStore(tmp_path)
    publisher = Publisher(tmp_path, 2)
    publisher.run_to("link-created")  # the plain folder is moved aside, the link does not exist yet
    publisher.kill()
    assert not os.path.lexists(legacy)
    assert read_artifact(store) == 1
    publish_version(store, 3)
    assert read_artifact(store) == 3 and (tmp_path / ASSET / "latest").is_symlink()
    assert version_entries(tmp_path) == {store.current(ASSET).name}


def test_a_concurrent_build_of_the_same_artifact_is_not_cleaned_away(tmp_path):
    store = ArtifactStore(tmp_path)
    publish_version(store, 1)
    slow = Publisher(tmp_path, 2)
    slow.run_to("half-written")  # alive and building while another run publishes and cleans up
    publish_version(store, 3)
    assert read_artifact(store) == 3
    assert len(version_entries(tmp_path)) == 3  # 3 (current), 2 (building) and 2's lock
    slow.finish()
    assert read_artifact(store) == 2  # the last to finish wins, complete
    assert version_entries(tmp_path) == {store.current(ASSET).name}


def test_a_failed_build_changes_nothing(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError, match="conversion failed"):
        with store.publish("gguf_model", None, {}) as folder:
            (folder / "part.gguf").write_bytes(b"GGUF")
            raise RuntimeError("conversion failed")
    assert not (tmp_path / "gguf_model").exists()
    publish_version(store, 1)
    with pytest.raises(RuntimeError):
        with store.publish(ASSET, None, {"version": 2}) as folder:
            raise RuntimeError("merge failed")
    assert read_artifact(store) == 1 and version_entries(tmp_path) == {store.current(ASSET).name}
    with pytest.raises(FileNotFoundError, match="materialize knowledge_dataset for partition v0.1.0 first"):
        store.lineage("knowledge_dataset", "v0.1.0")


def test_a_root_reached_through_a_link_keeps_its_current_version(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "via-link").symlink_to(tmp_path / "real", target_is_directory=True)
    store = ArtifactStore(tmp_path / "via-link")
    publish_version(store, 1)
    publish_version(store, 2)
    assert read_artifact(store) == 2
    assert read_artifact(ArtifactStore(tmp_path / "real")) == 2
    assert version_entries(tmp_path / "real") == {store.current(ASSET).name}
