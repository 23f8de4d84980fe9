"""What a training machine or the launcher reads back from a bucket is outside input (GCS emulator, the real
google-cloud-storage client): a checkpoint marker that lists files outside its checkpoint folder or is malformed, a
staged object whose name climbs out of its folder, and store entries handed to the step that would write outside
the destination are refused with an error naming the object and the field; nothing is downloaded outside. The
markers of a job's synced bases are checked the same way, and one that names another base is not this job's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edugraph_pipeline.cloud.gcs import client as gcs_client
from edugraph_pipeline.cloud.gcs import download_tree, inside, staged_name, upload_tree
from edugraph_pipeline.storage.manifest import GcsStoreError
from edugraph_pipeline.storage.transfer import read_version
from edugraph_pipeline.training.checkpoint_sync import (
    MARKER,
    CheckpointMarkerError,
    CheckpointStore,
    synced_bases,
    synced_checkpoints,
)
from edugraph_pipeline_tests.kit.gcp import StorageEmulator

BUCKET = "edugraph-hostile"
ROOT = "pipeline/work/job/checkpoints"
FORGED = f"gs://{BUCKET}/{ROOT}/checkpoint-4/{MARKER}"


@pytest.fixture
def bucket(monkeypatch):
    with StorageEmulator(BUCKET) as storage:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.host)
        yield gcs_client().bucket(BUCKET)


def checkpoint(folder: Path, step: int) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(bytes([step]) * 100)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def forge(bucket, files: dict, *, step=4) -> None:
    """A marker for checkpoint-4 listing `files`, with an object of the listed size under each name the emulator
    accepts (it refuses names with ``..`` segments; GCS itself stores them)."""
    for relative, size in files.items():
        if isinstance(size, int) and not relative.startswith("/") and ".." not in relative.split("/"):
            bucket.blob(f"{ROOT}/checkpoint-4/{relative}").upload_from_string(b"x" * size)
    bucket.blob(f"{ROOT}/checkpoint-4/{MARKER}").upload_from_string(json.dumps({"step": step, "files": files}))


def nothing_outside(tmp_path: Path, machine: Path) -> None:
    assert not list(tmp_path.rglob("outside.bin"))
    assert sorted(p.name for p in machine.iterdir()) == ["checkpoint-2"]  # what was there before, nothing more


@pytest.mark.parametrize("escaping", ["../../../outside.bin", "/tmp/outside.bin", "a/../../outside.bin"])
def test_a_marker_listing_files_outside_its_checkpoint_is_refused(bucket, tmp_path, escaping):
    store = CheckpointStore(bucket.client, BUCKET, ROOT, keep=5)
    store.upload(checkpoint(tmp_path / "trainer", 2))
    forge(bucket, {"model.safetensors": 100, escaping: 3})
    machine = tmp_path / "vm" / "checkpoints"
    (machine / "checkpoint-2").mkdir(parents=True)
    pattern = rf"{FORGED}: field 'files': '{escaping.replace('.', '[.]')}' is not a path inside its folder: refused"
    with pytest.raises(CheckpointMarkerError, match=pattern):
        store.restore(machine)
    with pytest.raises(CheckpointMarkerError, match=pattern):  # the step itself refuses it the same way
        synced_checkpoints(machine, print, sync_to=f"gs://{BUCKET}/{ROOT}")
    with pytest.raises(CheckpointMarkerError, match=pattern):  # and the launcher's resume line
        store.newest()
    nothing_outside(tmp_path, machine)


@pytest.mark.parametrize(("marker", "error"), [
    (b"{not json", r"not a checkpoint marker: not JSON"),
    (json.dumps({"step": 4, "files": ["model.safetensors"]}).encode(), r"not a checkpoint marker: field 'files' must be an object of sizes"),
    (json.dumps({"step": 4, "files": {"model.safetensors": "100"}}).encode(),
     r"field 'files' lists 'model.safetensors' with size '100', expected a file of the checkpoint and its byte count"),
    (json.dumps({"step": 40, "files": {"model.safetensors": 100}}).encode(), r"field 'step' is 40, expected 4"),
])
def test_a_malformed_marker_is_refused(bucket, tmp_path, marker, error):
    store = CheckpointStore(bucket.client, BUCKET, ROOT)
    bucket.blob(f"{ROOT}/checkpoint-4/model.safetensors").upload_from_string(b"x" * 100)
    bucket.blob(f"{ROOT}/checkpoint-4/{MARKER}").upload_from_string(marker)
    with pytest.raises(CheckpointMarkerError, match=rf"{FORGED}: {error}"):
        store.restore(tmp_path / "vm")
    assert not (tmp_path / "vm" / "checkpoint-4").exists()


def test_staged_objects_stay_below_their_destination(bucket, tmp_path):
    """The launcher's input staging (``<root>/files<path>``), read back on the machine. The emulator refuses to
    store a name with a ``..`` segment (GCS stores it), so the rule every name read back passes is checked on its
    own, and the download on a sibling that merely shares the name prefix."""
    source = tmp_path / "host" / "dataset"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "train.jsonl").write_text("{}\n")
    root = "pipeline/work/job/inputs"
    assert upload_tree(bucket, root, str(source)) == 1
    bucket.blob(staged_name(root, str(source)) + "-sibling/other.bin").upload_from_string(b"not ours")
    destination = tmp_path / "vm" / "dataset"
    assert download_tree(bucket.client, BUCKET, root, str(source), str(destination)) == 1
    assert sorted(p.relative_to(tmp_path / "vm").as_posix() for p in (tmp_path / "vm").rglob("*") if p.is_file()) == [
        "dataset/sub/train.jsonl"]
    for name in ("../outside.bin", "sub/../../outside.bin", "/etc/outside.bin", "sub\\..\\x", "a\x00b", ""):
        with pytest.raises(ValueError, match=r"gs://b/x: .* is not a path inside its folder"):
            inside(name, "gs://b/x")
    assert inside("sub//train.jsonl", "gs://b/x") == "sub/train.jsonl"


def test_store_entries_that_would_write_outside_the_destination_are_refused(bucket, tmp_path):
    """The store version a step is handed to read (`store_inputs`: from the Pipes context in the bucket)."""
    import hashlib

    bucket.blob("pipeline/ds/.versions/v1/id/train.jsonl").upload_from_string(b"{}\n")
    good = {"path": "train.jsonl", "size": 3, "sha256": hashlib.sha256(b"{}\n").hexdigest()}
    url = f"gs://{BUCKET}/pipeline/ds/.versions/v1/id"
    destination = tmp_path / "vm" / "dataset"
    assert read_version(bucket.client, {"url": url, "files": [good]}, str(destination)) == 3
    for entry, error in (({**good, "path": "../../outside.bin"}, r"field 'files\[0\]\.path' is '\.\./\.\./outside"),
                         ({**good, "size": -1}, r"field 'files\[0\]\.size' is -1, expected a byte count"),
                         ({**good, "sha256": "abc"}, r"field 'files\[0\]\.sha256' is 'abc'")):
        with pytest.raises(GcsStoreError, match=rf"{url}: {error}"):
            read_version(bucket.client, {"url": url, "files": [entry]}, str(tmp_path / "vm" / "other"))
    with pytest.raises(GcsStoreError, match=r"train\.jsonl does not match the store's manifest"):
        read_version(bucket.client, {"url": url, "files": [{**good, "size": 4}]}, str(tmp_path / "vm" / "other"))
    assert not list(tmp_path.rglob("outside.bin")) and not (tmp_path / "vm" / "other" / "train.jsonl").exists()


@pytest.mark.parametrize(("marker", "error"), [
    ({"base_model": "BASE", "base_revision": None, "files": {"../../outside.bin": 3}},
     r"field 'files': '\.\./\.\./outside\.bin' is not a path inside its folder: refused"),
    ({"base_model": "BASE", "base_revision": "0" * 40, "files": {"config.json": 2}},
     r"field 'base_revision' is '0{40}', expected None"),
    ({"base_model": "another/model", "base_revision": None, "files": {"config.json": 2}},
     r"field 'base_model' is 'another/model', expected '.*'"),
])
def test_a_merged_base_marker_that_is_not_this_jobs_is_refused(bucket, tmp_path, marker, error):
    base = tmp_path / "base"  # a local base folder: no Hub snapshot to sync, only the merged base
    base.mkdir()
    marker = {**marker, "base_model": str(base) if marker["base_model"] == "BASE" else marker["base_model"]}
    root = "pipeline/work/job/bases"
    bucket.blob(f"{root}/merged-base/config.json").upload_from_string(b"{}")
    bucket.blob(f"{root}/merged-base/{MARKER}").upload_from_string(json.dumps(marker))
    merged = tmp_path / "vm" / "work" / "merged-base"
    with pytest.raises(CheckpointMarkerError, match=rf"gs://{BUCKET}/{root}/merged-base/{MARKER}: {error}"):
        synced_bases(str(base), None, merged, print, sync_to=f"gs://{BUCKET}/{root}")
    assert not merged.exists() and not list(tmp_path.rglob("outside.bin"))
