"""The artifact store on GCS (the emulator, through the real google-cloud-storage client): round trip between
machines that share nothing but the bucket, a publication SIGKILLed at every step, verification against the
manifest, cleaning, and clear errors where no store can be reached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from edugraph_pipeline.storage import LINEAGE_FILE, ArtifactStore, open_store
from edugraph_pipeline.storage.gcs import MANIFEST_SUFFIX, PUBLISH_STEPS, GcsArtifactStore, GcsStoreError
from edugraph_pipeline_tests.kit.gcp import StorageEmulator

BUCKET = "edugraph-store-test"
URL = f"gs://{BUCKET}/pipeline"
ASSET = "merged_model"
WEIGHTS = 3 * 2**20 + 17  # big enough that a manifest-only read and a download are told apart by bytes


@pytest.fixture
def emulator(monkeypatch):
    with StorageEmulator(BUCKET) as server:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.host)
        yield server


def machine(tmp_path: Path, name: str, **kwargs) -> GcsArtifactStore:
    """A store as a fresh machine sees it: its own, empty local mirror."""
    store = open_store(URL, cache_dir=tmp_path / name, **kwargs)
    assert isinstance(store, GcsArtifactStore)
    return store


def payload(version: int) -> bytes:
    return bytes([version]) * WEIGHTS


def publish_version(store: ArtifactStore, version: int) -> None:
    with store.publish(ASSET, None, {"version": version}) as folder:
        (folder / "config.json").write_text(str(version))
        (folder / "model").mkdir()
        (folder / "model" / "weights.bin").write_bytes(payload(version))


def read_artifact(store: ArtifactStore) -> int:
    """What a reader loads, checked for being one complete version (no mix, nothing missing)."""
    folder = store.current(ASSET)
    version = json.loads((folder / LINEAGE_FILE).read_text())["version"]
    assert (folder / "config.json").read_text() == str(version)
    assert (folder / "model" / "weights.bin").read_bytes() == payload(version)
    assert store.lineage(ASSET)["version"] == version
    assert (store.asset_dir(ASSET) / "config.json").read_text() == str(version)
    return version


def bucket_names(store: GcsArtifactStore) -> set[str]:
    return {blob.name for blob in store.bucket.client.list_blobs(BUCKET)}


def remote_versions(store: GcsArtifactStore) -> set[str]:
    prefix = f"pipeline/{ASSET}/.versions/latest/"
    return {name[len(prefix):].split("/", 1)[0] for name in bucket_names(store) if name.startswith(prefix)}


def test_an_artifact_published_on_one_machine_is_read_on_another(tmp_path, emulator):
    writer = machine(tmp_path, "writer")
    publish_version(writer, 1)
    # the writer's mirror already holds what it uploaded: reading it back downloads only the manifest
    before = dict(writer.transferred)
    assert read_artifact(writer) == 1
    assert writer.transferred["downloaded"] - before["downloaded"] < 4096

    reader = machine(tmp_path, "reader")
    assert reader.lineage(ASSET)["version"] == 1 and reader.transferred["downloaded"] < 4096  # manifest only
    assert read_artifact(reader) == 1
    assert reader.transferred["downloaded"] > WEIGHTS
    assert reader.current(ASSET).is_relative_to(tmp_path / "reader")  # a local folder for libraries
    assert reader.work_root.is_relative_to(tmp_path / "reader")

    manifest = reader.manifest(ASSET)
    assert {entry["path"]: entry["size"] for entry in manifest["files"]} == {
        "config.json": 1, "lineage.json": (reader.current(ASSET) / LINEAGE_FILE).stat().st_size,
        "model/weights.bin": WEIGHTS,
    }
    assert manifest["lineage"]["asset"] == ASSET and reader.uri(ASSET) == f"{URL}/{ASSET}/latest"

    publish_version(writer, 2)
    assert read_artifact(reader) == 2  # the reader follows the manifest to the new version
    assert len(list((tmp_path / "reader" / "artifacts" / ASSET / ".versions" / "latest").glob("2*"))) == 1
    assert remote_versions(writer) == {writer.manifest(ASSET)["version"]}  # the replaced version is deleted


def test_nothing_published_reads_as_missing(tmp_path, emulator):
    store = machine(tmp_path, "m")
    assert not store.asset_dir("knowledge_dataset", "v0.1.0").exists()
    with pytest.raises(FileNotFoundError, match=f"{URL}/knowledge_dataset/v0.1.0 does not exist: materialize "
                                                 "knowledge_dataset for partition v0.1.0 first"):
        store.lineage("knowledge_dataset", "v0.1.0")
    with pytest.raises(FileNotFoundError, match="materialize merged_model first"):
        store.current(ASSET)


def test_a_failed_build_uploads_nothing(tmp_path, emulator):
    store = machine(tmp_path, "m")
    publish_version(store, 1)
    with pytest.raises(RuntimeError, match="merge failed"):
        with store.publish(ASSET, None, {"version": 2}) as folder:
            (folder / "part.bin").write_bytes(b"x")
            raise RuntimeError("merge failed")
    assert read_artifact(machine(tmp_path, "fresh")) == 1
    assert remote_versions(store) == {store.manifest(ASSET)["version"]}


# Publishes version N; at every step of `publish` it reports the step on stdout and waits for a line on stdin,
# so that the test can SIGKILL it right there.
PUBLISHER = textwrap.dedent(
    """
    import sys
    from edugraph_pipeline.storage import open_store

    def pause(step):
        print(step, flush=True)
        sys.stdin.readline()

    url, cache, version = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(url, cache_dir=cache, on_step=pause)
    with store.publish("merged_model", None, {"version": version}) as folder:
        (folder / "config.json").write_text(str(version))
        (folder / "model").mkdir()
        (folder / "model" / "weights.bin").write_bytes(bytes([version]) * int(sys.argv[4]))
    print("done", flush=True)
    """
)
VISIBLE_FROM = "committed"


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_publication_killed_at_any_step_leaves_the_previous_or_the_new_complete_artifact(tmp_path, emulator, step):
    publish_version(machine(tmp_path, "first"), 1)
    process = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, URL, str(tmp_path / "killed"), "2", str(WEIGHTS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    while (line := process.stdout.readline().strip()) != step:
        assert line, f"the publisher exited before step {step!r} (status {process.wait()})"
        process.stdin.write("\n")
        process.stdin.flush()
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    expected = 2 if PUBLISH_STEPS.index(step) >= PUBLISH_STEPS.index(VISIBLE_FROM) else 1
    reader = machine(tmp_path, "reader")
    assert read_artifact(reader) == expected
    leftover = remote_versions(reader) - {reader.manifest(ASSET)["version"]}
    # killed while or after uploading, before the commit: version 2's files are in the bucket, unreferenced;
    # killed after the commit, before cleaning: version 1 is
    uploaded_only = step in ("uploading", "uploaded")
    assert len(leftover) == (1 if uploaded_only or step == "committed" else 0)

    publish_version(machine(tmp_path, "next"), 3)
    assert read_artifact(reader) == 3
    # a young partial upload may belong to a live publisher (only STALE_UPLOAD-old ones are deleted); a
    # superseded version is deleted by the next publication
    assert remote_versions(reader) - {reader.manifest(ASSET)["version"]} == (leftover if uploaded_only else set())


def test_an_abandoned_upload_is_deleted_once_stale(tmp_path, emulator):
    store = machine(tmp_path, "m")
    old = f"{datetime.now(timezone.utc) - timedelta(hours=25):%Y%m%dT%H%M%S}-deadbeef"
    young = f"{datetime.now(timezone.utc) - timedelta(hours=1):%Y%m%dT%H%M%S}-0badf00d"
    for version_id in (old, young):
        store.bucket.blob(f"pipeline/{ASSET}/.versions/latest/{version_id}/config.json").upload_from_string(b"9")
    publish_version(store, 1)
    assert remote_versions(store) == {store.manifest(ASSET)["version"], young}


def test_a_file_that_does_not_match_its_manifest_is_refused(tmp_path, emulator):
    writer = machine(tmp_path, "writer")
    publish_version(writer, 1)
    version = writer.manifest(ASSET)["version"]
    name = f"pipeline/{ASSET}/.versions/latest/{version}/model/weights.bin"
    writer.bucket.blob(name).upload_from_string(payload(7))  # same size, other bytes
    reader = machine(tmp_path, "reader")
    with pytest.raises(GcsStoreError, match=f"gs://{BUCKET}/{name} does not match its manifest"):
        reader.current(ASSET)
    assert not (tmp_path / "reader" / "artifacts" / ASSET / ".versions" / "latest" / version).exists()
    writer.bucket.blob(name).delete()
    with pytest.raises(GcsStoreError, match=f"gs://{BUCKET}/{name} is listed in its manifest but missing"):
        reader.current(ASSET)


def test_manifest_names_are_the_commit_objects(tmp_path, emulator):
    store = machine(tmp_path, "m")
    with store.publish("knowledge_dataset", "v0.1.0", {"rows": 3}) as folder:
        (folder / "data.jsonl").write_text("{}\n")
    assert f"pipeline/knowledge_dataset/v0.1.0{MANIFEST_SUFFIX}" in bucket_names(store)
    assert machine(tmp_path, "other").lineage("knowledge_dataset", "v0.1.0")["rows"] == 3


def test_an_unreachable_or_unknown_store_is_a_clear_error(tmp_path, monkeypatch, emulator):
    with pytest.raises(GcsStoreError, match="gs://no-such-bucket/x: bucket no-such-bucket does not exist"):
        open_store("gs://no-such-bucket/x", cache_dir=tmp_path)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # the discard port: nothing answers
    with pytest.raises(GcsStoreError, match=f"EDUGRAPH_DATA_DIR={URL}: http://127.0.0.1:9 does not answer"):
        open_store(URL, cache_dir=tmp_path)


def test_gs_without_credentials_fails_and_writes_no_local_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no user credentials
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # and no metadata server to ask
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GcsStoreError, match=f"EDUGRAPH_DATA_DIR={URL}: no Google Cloud credentials"):
        open_store(URL, cache_dir=tmp_path / "cache")
    for wrong in ("s3://bucket/prefix", "gs:/bucket/prefix"):  # the second: what Path("gs://...") collapses to
        with pytest.raises(ValueError, match="expected gs://<bucket>/<prefix>"):
            open_store(wrong)
    assert not (tmp_path / "gs:").exists() and not (tmp_path / "s3:").exists()


def test_the_settings_open_a_gs_data_dir_as_the_object_store(tmp_path, monkeypatch, emulator):
    from edugraph_pipeline import settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDUGRAPH_DATA_DIR", URL)
    monkeypatch.delenv("EDUGRAPH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.data_location() == URL
    assert settings.cache_dir() == tmp_path / "xdg" / "edugraph" / "stores" / BUCKET / "pipeline"
    with pytest.raises(ValueError, match=f"EDUGRAPH_DATA_DIR={URL} is an object store, not a folder"):
        settings.data_dir()
    store = open_store(settings.data_location(), cache_dir=settings.cache_dir())
    publish_version(store, 1)
    assert store.root == settings.cache_dir() / "artifacts" and store.work_root == store.root / ".work"
    assert not (tmp_path / "gs:").exists()
    monkeypatch.setenv("EDUGRAPH_DATA_DIR", "out")
    assert settings.data_location() == str(tmp_path / "out") and settings.cache_dir() == tmp_path / "out" / ".cache"


def test_a_remote_writer_report_is_checked_against_the_bucket(tmp_path, emulator):
    """A training step writes a publication's files into the bucket itself and reports them (`RemoteStaging`):
    the commit lists them after checking size and md5 against the bucket; a report that does not match, or files
    it does not name, commit nothing and the previous artifact stays current."""
    import base64
    import hashlib

    from edugraph_pipeline.storage import new_version_id

    writer = machine(tmp_path, "writer")
    publish_version(writer, 1)

    def step_writes(staging: Path, content: bytes, *, report_size: int | None = None, extra: bool = False):
        remote = writer.remote_staging(staging)
        assert remote is not None and remote.versions_url == f"{URL}/{ASSET}/.versions/latest"
        version = new_version_id()
        name = f"pipeline/{ASSET}/.versions/latest/{version}"
        writer.bucket.blob(f"{name}/model/weights.bin").upload_from_string(content)
        if extra:
            writer.bucket.blob(f"{name}/unreported.bin").upload_from_string(b"x")
        md5 = base64.b64encode(hashlib.md5(content).digest()).decode()
        remote.adopt(version, [{"path": "model/weights.bin", "size": report_size or len(content),
                                "sha256": hashlib.sha256(content).hexdigest(), "md5": md5}])

    for kwargs, error in (({"report_size": 5}, "the bucket holds"), ({"extra": True}, "did not report")):
        with pytest.raises(GcsStoreError, match=error):
            with writer.publish(ASSET, None, {"version": 2}) as staging:
                step_writes(staging, payload(2), **kwargs)
        assert read_artifact(machine(tmp_path, f"reader-{error[:8]}")) == 1
    assert remote_versions(writer) == {writer.manifest(ASSET)["version"]}  # the refused uploads are gone

    before = dict(writer.transferred)
    with writer.publish(ASSET, None, {"version": 3}) as staging:
        step_writes(staging, payload(3))
        (staging / "config.json").write_text("3")  # written by the publisher beside the step's files
    assert writer.transferred["downloaded"] - before["downloaded"] < 4096  # the step's bytes were never fetched
    assert writer.transferred["uploaded"] - before["uploaded"] < 4096  # nor uploaded again
    assert read_artifact(machine(tmp_path, "reader-3")) == 3


def test_portable_names_are_the_same_on_every_machine(tmp_path, emulator):
    """What job identities and lineage are built from: mirror paths named as the store names them."""
    one, two = machine(tmp_path, "one"), machine(tmp_path, "two")
    job = {"config": {"dataset_path": str(one.root / "knowledge_dataset" / "v1" / "dataset"), "lr": 0.1,
                      "base": [str(one.root / "base_model" / "latest" / "model")], "other": str(tmp_path / "x")}}
    moved = {"config": {"dataset_path": str(two.root / "knowledge_dataset" / "v1" / "dataset"), "lr": 0.1,
                        "base": [str(two.root / "base_model" / "latest" / "model")], "other": str(tmp_path / "x")}}
    assert one.portable(job) == two.portable(moved)
    assert one.portable(job)["config"]["dataset_path"] == f"{URL}/knowledge_dataset/v1/dataset"
    assert one.portable(str(one.root) + "-sibling") == str(one.root) + "-sibling"  # a prefix is not a parent
    local = open_store(tmp_path / "local")
    assert local.portable(job) == job  # a local store's names are its paths


# ---- hostile manifests and reports: refused by name and field, nothing published, the previous artifact intact

MANIFEST = f"pipeline/{ASSET}/latest{MANIFEST_SUFFIX}"


def manifest_with(store: GcsArtifactStore, change) -> bytes:
    """The current manifest's bytes after `change(manifest)` (a dict to edit in place)."""
    manifest = json.loads(store.bucket.blob(MANIFEST).download_as_bytes())
    change(manifest)
    return json.dumps(manifest).encode()


def set_entry(field: str, value):
    def change(manifest):
        entry = next(e for e in manifest["files"] if e["path"] == "config.json")
        entry[field] = value

    return change


@pytest.mark.parametrize(("damage", "error"), [
    (lambda m: b"{not json", r"latest\.manifest\.json is not a valid manifest: not JSON"),
    (lambda m: b"[1, 2]", r"is not a valid manifest: a JSON list, expected an object"),
    (lambda m: manifest_with(m, lambda d: d.update(files="all of them")),
     r"field 'files' is 'all of them', expected a list of files"),
    (lambda m: manifest_with(m, lambda d: d.pop("lineage")), r"field 'lineage' is missing"),
    (lambda m: manifest_with(m, lambda d: d.update(version="../../escape")),
     r"field 'version' is '\.\./\.\./escape', expected a version id"),
    (lambda m: manifest_with(m, set_entry("size", "1")), r"field 'files\[\d\]\.size' is '1', expected a byte count"),
    (lambda m: manifest_with(m, set_entry("sha256", None)), r"field 'files\[\d\]\.sha256' is None, expected 64"),
    (lambda m: manifest_with(m, set_entry("path", "../../../outside.json")),
     r"field 'files\[\d\]\.path' is '\.\./\.\./\.\./outside\.json', expected a path inside the version"),
    (lambda m: manifest_with(m, set_entry("path", "/tmp/outside.json")),
     r"field 'files\[\d\]\.path' is '/tmp/outside\.json', expected a path inside the version"),
])
def test_a_hostile_manifest_is_refused_by_name_and_field(tmp_path, emulator, damage, error):
    writer = machine(tmp_path, "writer")
    publish_version(writer, 1)
    reader = machine(tmp_path, "reader")
    assert read_artifact(reader) == 1
    seen = reader.current(ASSET)
    good = writer.bucket.blob(MANIFEST).download_as_bytes()
    writer.bucket.blob(MANIFEST).upload_from_string(damage(writer))
    bad = writer.bucket.blob(MANIFEST).download_as_bytes()
    where = f"gs://{BUCKET}/{MANIFEST}"

    for read in (reader.current, reader.lineage, machine(tmp_path, "fresh").current):
        with pytest.raises(GcsStoreError, match=error) as refused:
            read(ASSET)
        assert where in str(refused.value)
    # the reader's mirror still shows the version it had, complete; nothing landed outside a version folder
    assert (reader.root / ASSET / "latest").resolve() == seen.resolve()
    assert (seen / "model" / "weights.bin").read_bytes() == payload(1)
    assert not list(tmp_path.rglob("outside.json")) and not (tmp_path / "escape").exists()
    assert not list((tmp_path / "fresh").rglob("weights.bin"))

    # a publication over it commits nothing and leaves no version behind
    with pytest.raises(GcsStoreError, match=error):
        publish_version(machine(tmp_path, "next"), 2)
    assert writer.bucket.blob(MANIFEST).download_as_bytes() == bad
    assert remote_versions(writer) == {json.loads(good)["version"]}

    writer.bucket.blob(MANIFEST).upload_from_string(good)  # repaired: the previous artifact is all there
    assert read_artifact(machine(tmp_path, "after")) == 1


def test_a_file_of_another_size_than_its_manifest_says_is_refused(tmp_path, emulator):
    writer = machine(tmp_path, "writer")
    publish_version(writer, 1)
    reader = machine(tmp_path, "reader")
    assert read_artifact(reader) == 1
    good = writer.bucket.blob(MANIFEST).download_as_bytes()
    publish_version(writer, 2)
    # version 2's manifest claims another size for its weights (a corrupted or forged commit)
    writer.bucket.blob(MANIFEST).upload_from_string(manifest_with(writer, lambda d: next(
        e for e in d["files"] if e["path"] == "model/weights.bin").update(size=WEIGHTS + 1)))
    version = writer.manifest(ASSET)["version"]
    with pytest.raises(GcsStoreError, match=rf"gs://{BUCKET}/pipeline/{ASSET}/\.versions/latest/{version}/model/"
                                            rf"weights\.bin does not match its manifest \(size {WEIGHTS}, expected "
                                            rf"{WEIGHTS + 1}"):
        reader.current(ASSET)
    versions = tmp_path / "reader" / "artifacts" / ASSET / ".versions" / "latest"
    assert not (versions / version).exists() and not list(versions.glob("*.download-*"))  # no partial copy kept
    assert json.loads((reader.root / ASSET / "latest" / LINEAGE_FILE).read_text())["version"] == 1  # still v1
    assert json.loads(good)["version"] != version


def test_a_hostile_remote_report_is_refused_before_anything_is_committed(tmp_path, emulator):
    """The training step's report of the files it wrote (`RemoteStaging.adopt`) is outside input too: a path
    outside the version, a malformed field or an md5 the bucket does not hold commits nothing."""
    import base64
    import hashlib

    from edugraph_pipeline.storage import new_version_id

    writer = machine(tmp_path, "writer")
    publish_version(writer, 1)
    content = payload(2)
    good = {"path": "model/weights.bin", "size": len(content), "sha256": hashlib.sha256(content).hexdigest(),
            "md5": base64.b64encode(hashlib.md5(content).digest()).decode()}
    other_md5 = base64.b64encode(hashlib.md5(payload(3)).digest()).decode()
    cases = [
        ({**good, "path": "../../escape.bin"}, r"field 'files\[0\]\.path' is '\.\./\.\./escape\.bin'"),
        ({**good, "size": "3145745"}, r"field 'files\[0\]\.size' is '3145745', expected a byte count"),
        ({**good, "md5": None}, r"field 'files\[0\]\.md5' is None"),
        ({**good, "md5": other_md5}, rf"the bucket holds {len(content)} bytes \(md5 .*\), the training step reported"),
    ]
    for entry, error in cases:
        with pytest.raises(GcsStoreError, match=error):
            with writer.publish(ASSET, None, {"version": 2}) as staging:
                version = new_version_id()
                writer.bucket.blob(f"pipeline/{ASSET}/.versions/latest/{version}/model/weights.bin").upload_from_string(
                    content)
                writer.remote_staging(staging).adopt(version, [entry])
        assert read_artifact(machine(tmp_path, f"reader-{cases.index((entry, error))}")) == 1
        assert remote_versions(writer) == {writer.manifest(ASSET)["version"]}  # the refused upload is gone
    assert not list(tmp_path.rglob("escape.bin"))
