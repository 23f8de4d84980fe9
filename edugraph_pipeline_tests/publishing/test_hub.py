"""publish_folder / publish_dataset_folder against the local Hub, with the real huggingface_hub client; the Hub
resource the settings bind (targets, endpoint, token, privacy)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from edugraph_pipeline.publishing.dataset_upload import publish_dataset_folder
from edugraph_pipeline.publishing.upload import PublicationError, publish_folder
from edugraph_pipeline_tests.conftest import TOKEN

pytestmark = pytest.mark.filterwarnings("ignore:Use .content=<...>. to upload raw bytes:DeprecationWarning")

REPO = "edugraph/edugraph-labeller"
NO_WAIT = {"retry_wait": 0.0}


def small_model_folder(root: Path, *, seed: int = 0) -> Path:
    """A model-shaped folder: LFS weights (safetensors suffix), processor/chat-template files, a README."""
    folder = root / f"model-{seed}"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen3_vl", "seed": seed}), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(os.urandom(64 * 1024))
    (folder / "chat_template.jinja").write_text("{{ messages }}", encoding="utf-8")
    (folder / "processor_config.json").write_text("{}", encoding="utf-8")
    (folder / "sub" / "notes.txt").write_text("nested file", encoding="utf-8")
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n\n# test\n", encoding="utf-8")
    return folder


def publish(hub, folder, **kwargs):
    kwargs.setdefault("commit_message", "publish")
    return publish_folder(folder, REPO, token=TOKEN, endpoint=hub.endpoint, **NO_WAIT, **kwargs)


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------- round trip
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The project's tiny real Qwen3-VL (offline): what the pipeline publishes."""
    from edugraph_pipeline.training.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def test_model_round_trip_and_idempotent_republish(hub, tiny_model, tmp_path, monkeypatch):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from edugraph_pipeline.publishing.model_card import PublicationLineage, render_model_card

    lineage = PublicationLineage(repo_id=REPO, base_model="Qwen/Qwen3-VL-2B-Instruct", ontology_release="v0.21.0",
                                 ontology_commit="0" * 40)
    card = render_model_card(lineage, {"exact_match": 0.5})
    result = publish(hub, tiny_model, commit_message="Publish tiny model", extra_files={"README.md": card})
    assert result.created_commit and result.commit_id == hub.head(REPO)
    assert result.previous_commit == hub.history(REPO)[-1].oid  # the new repository's initial commit
    assert result.url == f"{hub.endpoint}/{REPO}"
    expected = {**local_files(tiny_model), "README.md": card.encode()}
    assert set(result.files) == set(expected)
    assert hub.commit_count(REPO) == 2  # the Hub's initial commit + ours
    assert hub.files(REPO) == {**expected, ".gitattributes": hub.files(REPO)[".gitattributes"]}
    assert hub.requests_for("lfs_upload"), "weights must go through the LFS upload, not inline in the commit"

    # Download from the same server into a fresh cache (anonymously: the repo is public), then load offline.
    cache = tmp_path / "fresh-cache"
    local = Path(snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache, token=False))
    assert local.name == result.commit_id
    assert local_files(local) == {**expected, ".gitattributes": hub.files(REPO)[".gitattributes"]}

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert AutoConfig.from_pretrained(local).model_type == "qwen3_vl"
    AutoProcessor.from_pretrained(local)  # processor files and chat template made the trip too
    downloaded = AutoModelForImageTextToText.from_pretrained(local).state_dict()
    original = AutoModelForImageTextToText.from_pretrained(tiny_model).state_dict()
    assert downloaded.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(downloaded[name], tensor), name
    run_card_usage_snippet(card, local)

    # Publishing the same content again: no upload, no commit, same revision.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    before = len(hub.requests)
    again = publish(hub, tiny_model, commit_message="Publish tiny model again", extra_files={"README.md": card})
    assert not again.created_commit
    assert again.commit_id == result.commit_id == hub.head(REPO)
    assert hub.commit_count(REPO) == 2
    later = hub.requests[before:]
    assert not [r for r in later if r.target in ("lfs_upload", "lfs_batch", "commit", "preupload")]


def run_card_usage_snippet(card: str, model_path: Path) -> None:
    """Run the card's Python usage example against the downloaded model (a generated picture, a few tokens)."""
    from PIL import Image

    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]
    snippet = snippet.replace('Image.open("worksheet.png")', 'Image.new("RGB", (64, 64), "white")')
    snippet = snippet.replace("max_new_tokens=256", "max_new_tokens=4")
    assert "labels = json.loads(answer)" in snippet
    snippet = snippet.replace("labels = json.loads(answer)", "labels = answer")
    namespace: dict = {"Image": Image}
    exec(compile(snippet.replace('model_id = "' + REPO + '"', f"model_id = {str(model_path)!r}"), "card", "exec"),
         namespace)
    assert isinstance(namespace["labels"], str)


# ---------------------------------------------------------------------------------------------------- changes
def test_changed_file_makes_exactly_one_commit(hub, tmp_path):
    folder = small_model_folder(tmp_path)
    first = publish(hub, folder)
    assert hub.commit_count(REPO) == 2

    (folder / "config.json").write_text('{"changed": true}', encoding="utf-8")
    (folder / "sub" / "notes.txt").unlink()
    (folder / "generation_config.json").write_text("{}", encoding="utf-8")
    second = publish(hub, folder, commit_message="second version")
    assert second.created_commit and second.previous_commit == first.commit_id
    assert hub.commit_count(REPO) == 3
    assert hub.history(REPO)[0].title == "second version"
    remote = hub.files(REPO)
    assert set(remote) == set(local_files(folder)) | {".gitattributes"}  # stale file deleted, .gitattributes kept
    assert remote["config.json"] == b'{"changed": true}'
    # Unchanged weights were not uploaded again.
    uploads = [r for r in hub.requests_for("lfs_upload")]
    assert len(uploads) == 1

    third = publish(hub, folder, commit_message="no change")
    assert not third.created_commit and third.commit_id == second.commit_id
    assert hub.commit_count(REPO) == 3


def test_extra_files_and_keep_stale(hub, tmp_path):
    folder = small_model_folder(tmp_path)
    publish(hub, folder, extra_files={"README.md": "---\nlicense: mit\n---\n# card\n"})
    assert hub.files(REPO)["README.md"] == b"---\nlicense: mit\n---\n# card\n"
    (folder / "sub" / "notes.txt").unlink()
    result = publish(hub, folder, delete_stale=False, extra_files={"README.md": "---\nlicense: mit\n---\n# card\n"})
    assert not result.created_commit and "sub/notes.txt" in hub.files(REPO)


# ----------------------------------------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    ("target", "status"),
    [("lfs_upload", 503), ("lfs_upload", "drop"), ("commit", 500), ("commit", "drop"), ("lfs_batch", 502)],
)
def test_failed_upload_leaves_main_unchanged(hub, tmp_path, target, status, caplog):
    caplog.set_level(logging.DEBUG)
    folder = small_model_folder(tmp_path)
    first = publish(hub, folder)
    before = hub.files(REPO)

    (folder / "model.safetensors").write_bytes(os.urandom(64 * 1024))
    (folder / "config.json").write_text('{"v": 2}', encoding="utf-8")
    hub.fail(target, times=None, status=status)
    waits: list[float] = []
    with pytest.raises(PublicationError) as caught:
        publish_folder(folder, REPO, token=TOKEN, endpoint=hub.endpoint, commit_message="v2", max_attempts=3,
                       retry_wait=0.5, sleep=waits.append)
    error = caught.value
    assert error.attempts == 3 and error.transient and waits == [0.5, 1.0]
    assert REPO in str(error) and "failed after 3 attempt(s)" in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert TOKEN not in str(error) and TOKEN not in repr(error) and TOKEN not in caplog.text
    # The main branch is exactly as before: no commit landed, content unchanged.
    assert hub.head(REPO) == first.commit_id and hub.commit_count(REPO) == 2
    assert hub.files(REPO) == before
    assert hub.token_leaks == []


@pytest.mark.parametrize(("target", "status"), [("commit", 503), ("commit", "drop"), ("preupload", 500)])
def test_transient_fault_is_retried(hub, tmp_path, target, status):
    folder = small_model_folder(tmp_path)
    publish(hub, folder)
    (folder / "config.json").write_text('{"v": 2}', encoding="utf-8")
    hub.fail(target, times=2, status=status)
    waits: list[float] = []
    result = publish_folder(folder, REPO, token=TOKEN, endpoint=hub.endpoint, commit_message="v2",
                            max_attempts=3, retry_wait=0.25, sleep=waits.append)
    assert result.created_commit and hub.commit_count(REPO) == 3
    assert hub.files(REPO)["config.json"] == b'{"v": 2}'
    if target == "commit":  # huggingface_hub does not retry the commit itself: our loop did
        assert result.attempts == 3 and waits == [0.25, 0.5]


def test_transient_lfs_fault_is_absorbed_by_huggingface_hub_backoff(hub, tmp_path):
    folder = small_model_folder(tmp_path)
    hub.fail("lfs_upload", times=2, status=503)
    result = publish(hub, folder)
    assert result.created_commit and result.attempts == 1
    assert [r.status for r in hub.requests_for("lfs_upload")] == [503, 503, 200]


def test_commit_whose_answer_is_lost_is_not_made_twice(hub, tmp_path):
    folder = small_model_folder(tmp_path)
    first = publish(hub, folder)
    (folder / "config.json").write_text('{"v": 2}', encoding="utf-8")
    hub.fail("commit", times=1, status="drop", after_apply=True)
    result = publish(hub, folder, commit_message="v2")
    assert result.created_commit and result.attempts == 2
    assert result.previous_commit == first.commit_id and result.commit_id == hub.head(REPO)
    assert hub.commit_count(REPO) == 3  # exactly one new commit


def test_server_rejects_stale_parent_commit(hub, tmp_path):
    from huggingface_hub import CommitOperationAdd

    folder = small_model_folder(tmp_path)
    first = publish(hub, folder)
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_commit(REPO, [CommitOperationAdd("a.txt", b"a")], commit_message="a", parent_commit=first.commit_id)
    with pytest.raises(HfHubHTTPError) as caught:
        api.create_commit(REPO, [CommitOperationAdd("b.txt", b"b")], commit_message="b", parent_commit=first.commit_id)
    assert caught.value.response.status_code == 412
    assert "b.txt" not in hub.files(REPO) and hub.commit_count(REPO) == 3


# ------------------------------------------------------------------------------------------------------ token
def test_token_never_leaks(hub, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    folder = small_model_folder(tmp_path)
    result = publish(hub, folder)
    assert TOKEN not in repr(result) and TOKEN not in json.dumps(result.to_dict())

    # A wrong token: refused at once (not transient), and neither token shows up anywhere.
    wrong = "hf_WrongTokenValue0123456789abcdefABC"
    with pytest.raises(PublicationError) as caught:
        publish_folder(folder, REPO, token=wrong, endpoint=hub.endpoint, commit_message="x", max_attempts=3,
                       **NO_WAIT)
    assert caught.value.attempts == 1 and not caught.value.transient and caught.value.status == 401
    for secret in (TOKEN, wrong):
        assert secret not in str(caught.value) and secret not in caplog.text

    # Every write carried the token, and only in the Authorization header, which the log shows redacted.
    writes = [r for r in hub.requests if r.method in ("POST", "PUT") and r.target != "lfs_upload"]
    assert writes and all(r.headers.get("authorization") == "<redacted>" for r in writes)
    assert not [r for r in hub.requests if r.target == "lfs_upload" and "authorization" in r.headers]
    assert hub.token_leaks == []
    assert all(TOKEN not in json.dumps(r.headers) and TOKEN not in r.path for r in hub.requests)


def test_missing_token_is_a_clear_error(hub, tmp_path):
    with pytest.raises(PublicationError, match="HF_TOKEN"):
        publish_folder(small_model_folder(tmp_path), REPO, endpoint=hub.endpoint, commit_message="x")


def test_env_token_endpoint_and_privacy_reach_the_upload_through_the_hub_resource(hub, tmp_path, monkeypatch):
    """HF_TOKEN, HF_ENDPOINT and EDUGRAPH_HF_PRIVATE are bound as EnvVars by the settings and resolved when a run
    starts; the upload gets them as arguments."""
    import dagster as dg

    from edugraph_pipeline.defs.resources import hub_publisher_from_settings

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint + "/")
    monkeypatch.setenv("EDUGRAPH_HF_PRIVATE", "yes")
    monkeypatch.setenv("EDUGRAPH_HF_REPO", REPO)
    resource = hub_publisher_from_settings()
    assert resource.token == dg.EnvVar("HF_TOKEN") and resource.endpoint == dg.EnvVar("HF_ENDPOINT")
    assert resource.private == dg.EnvVar("EDUGRAPH_HF_PRIVATE") and resource.repo_id == dg.EnvVar("EDUGRAPH_HF_REPO")
    with dg.build_resources({"hub": resource}) as built:
        publisher = built.hub
        result = publish_folder(small_model_folder(tmp_path), publisher.repo_id, commit_message="from env",
                                token=publisher.token, endpoint=publisher.endpoint, private=publisher.is_private)
    assert result.created_commit and hub.repo(REPO).private
    assert result.url == f"{hub.endpoint}/{REPO}"  # the trailing slash of HF_ENDPOINT is dropped
    assert hub.token_leaks == []


def test_errors_are_redacted_of_the_token():
    """Failures are redacted with `redaction.redact` (one helper for the whole pipeline), token given or not."""
    from edugraph_pipeline.publishing.upload import _describe
    from edugraph_pipeline.redaction import redact

    error = RuntimeError(f"Authorization: Bearer {TOKEN} failed for token={TOKEN}; other hf_AbCdEfGhIjKlMnOpQrStUv")
    cleaned = redact(_describe(error), [TOKEN])
    assert TOKEN not in cleaned and "hf_AbCdEf" not in cleaned and "Bearer ***" in cleaned
    assert cleaned.startswith("RuntimeError: Authorization: Bearer ***")


# ---------------------------------------------------------------------------------------------------- datasets
def test_dataset_round_trip(hub, tmp_path):
    from datasets import Dataset, DatasetDict, load_dataset

    data = DatasetDict({
        "train": Dataset.from_dict({"question": [f"q{i}" for i in range(20)], "answer": [f"a{i}" for i in range(20)]}),
        "test": Dataset.from_dict({"question": ["tq"], "answer": ["ta"]}),
    })
    saved = tmp_path / "knowledge"
    data.save_to_disk(str(saved))
    repo = "edugraph/edugraph-knowledge"
    kwargs = dict(token=TOKEN, endpoint=hub.endpoint, commit_message="knowledge v0.21.0",
                  lineage={"ontology_release": "v0.21.0"}, **NO_WAIT)
    result = publish_dataset_folder(saved, repo, **kwargs)
    assert result.created_commit and result.repo_type == "dataset"
    assert result.url == f"{hub.endpoint}/datasets/{repo}"
    files = hub.files(repo, "dataset")
    assert {"README.md", "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"} <= set(files)
    card = files["README.md"].decode()
    assert "config_name: default" in card and "v0.21.0" in card

    again = publish_dataset_folder(saved, repo, **kwargs)
    assert not again.created_commit and hub.commit_count(repo, "dataset") == 2  # Parquet bytes are deterministic

    local = snapshot_download(repo, repo_type="dataset", endpoint=hub.endpoint, cache_dir=tmp_path / "cache",
                              token=False)
    loaded = load_dataset(local)  # the card's `configs` name the splits
    assert loaded["train"].to_dict() == data["train"].to_dict()
    assert loaded["test"].to_dict() == data["test"].to_dict()


def test_hub_targets_and_the_hub_resource_from_the_settings(monkeypatch):
    import dagster as dg

    from edugraph_pipeline.defs.resources import hub_publisher_from_settings
    from edugraph_pipeline.publishing import HubTargets, normalise_endpoint

    off = HubTargets.of()
    assert off.model_repo is None and off.knowledge_repo is None and off.worksheets_repo is None
    on = HubTargets.of("acme/labeller", "", "acme/ws")
    assert (on.model_repo, on.knowledge_repo, on.worksheets_repo) == ("acme/labeller", "acme/edugraph-knowledge", "acme/ws")

    for name in ("EDUGRAPH_HF_REPO", "EDUGRAPH_HF_KNOWLEDGE_REPO", "EDUGRAPH_HF_WORKSHEETS_REPO", "HF_ENDPOINT",
                 "EDUGRAPH_HF_PRIVATE", "EDUGRAPH_CODE_VERSION", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    unset = hub_publisher_from_settings()
    assert (unset.repo_id, unset.knowledge_repo, unset.token) == ("", "", None)
    assert unset.endpoint == "https://huggingface.co" and not unset.is_private  # the settings' defaults

    monkeypatch.setenv("EDUGRAPH_HF_REPO", "acme/labeller")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("EDUGRAPH_HF_WORKSHEETS_REPO", "acme/ws")
    monkeypatch.setenv("EDUGRAPH_HF_PRIVATE", "true")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", TOKEN)  # huggingface_hub's older name still counts
    with dg.build_resources({"hub": hub_publisher_from_settings()}) as built:
        on = built.hub
        assert (on.repo_id, on.knowledge_repo, on.worksheets_repo) == ("acme/labeller", "acme/edugraph-knowledge",
                                                                        "acme/ws")
        assert normalise_endpoint(on.endpoint) == "http://127.0.0.1:9" and on.is_private and on.token == TOKEN
    monkeypatch.setenv("EDUGRAPH_HF_PRIVATE", "maybe")
    with pytest.raises(ValueError, match=r"EDUGRAPH_HF_PRIVATE='maybe': expected one of 1, true"):
        hub_publisher_from_settings()
    monkeypatch.setenv("EDUGRAPH_HF_PRIVATE", "false")
    monkeypatch.setenv("HF_ENDPOINT", "127.0.0.1:9")
    with pytest.raises(ValueError, match=r"Hub endpoint '127\.0\.0\.1:9': expected an http\(s\) URL \(HF_ENDPOINT\)"):
        hub_publisher_from_settings()


def test_a_repository_without_a_token_fails_when_the_code_location_loads(tmp_path):
    """The README: publication does nothing until EDUGRAPH_HF_REPO *and* HF_TOKEN are set; one without the other
    is a mistake, reported when the definitions load (not a run that fails or silently skips at the end)."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update({"EDUGRAPH_HF_REPO": "acme/labeller", "EDUGRAPH_DATA_DIR": str(tmp_path)})
    load = [sys.executable, "-c", "import edugraph_pipeline.definitions as d; d.defs()"]  # what Dagster does
    failed = subprocess.run(load, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    assert "EDUGRAPH_HF_REPO=acme/labeller is set but HF_TOKEN is not" in failed.stderr
    env.pop("EDUGRAPH_HF_REPO")
    assert subprocess.run(load, env=env, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    env.update({"EDUGRAPH_HF_REPO": "acme/labeller", "HF_TOKEN": TOKEN})
    loaded = subprocess.run(load, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0 and TOKEN not in loaded.stdout + loaded.stderr
