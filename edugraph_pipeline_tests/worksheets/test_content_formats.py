"""Both upstream content release formats, from a folder, an archive, a URL and a folder of releases."""

import functools
import http.server
import json
import tarfile
import threading
from pathlib import Path

import pytest

from edugraph_pipeline.defs.worksheets.resources import ContentSource
from edugraph_pipeline.worksheets.content_release import ContentSourceError
from edugraph_pipeline.worksheets.content_sources import folder_version, read_content
from edugraph_pipeline.worksheets.dataset import build_dataset, split_overlap
from edugraph_pipeline.worksheets.imagefolder import problem_id_from_file_name
from edugraph_pipeline.worksheets.release_series import list_folder_releases
from edugraph_pipeline_tests.worksheets.worksheet_helpers import write_imagefolder_release, write_imagine_release


def make_archive(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return archive


def test_problem_id_pairs_question_and_solution_files():
    assert problem_id_from_file_name("m/x_inst-0_mode-Q.png") == problem_id_from_file_name("m/x_inst-0_mode-S.png")
    assert problem_id_from_file_name("m/a-question.png") == problem_id_from_file_name("m/a-solution.jpg") == "m/a"


@pytest.mark.parametrize("namespace", ["http://edugraph.io/edu#", "http://edugraph.io/edu/"])
def test_imagine_content_meta_json(tmp_path, ontology, real_tag_sets, namespace):
    tag_sets = [row["tags"] for row in real_tag_sets[:5]]
    write_imagine_release(tmp_path, tag_sets, ontology, namespace)
    release = read_content(str(tmp_path), tmp_path / "work", ontology)
    assert release.format == "imagine-content" and len(release.skipped) == 0
    assert len(release.items) == 10
    assert [item.view for item in release.items[:2]] == ["question", "solution"]
    assert release.items[0].problem_id == release.items[1].problem_id == "addition/h0"
    dataset, summary = build_dataset(release.items, ontology)
    assert summary.unknown_labels == {}
    answers = [json.loads(a) for split in dataset.values() for a in split["labels"]]
    expected = {json.dumps(ontology.group_by_dimension(tags), sort_keys=True) for tags in tag_sets}
    assert {json.dumps(a, sort_keys=True) for a in answers} == expected


def test_imagefolder_metadata_jsonl(tmp_path, ontology, real_tag_sets):
    rows = real_tag_sets[:8]
    write_imagefolder_release(tmp_path, rows, namespace="http://edugraph.io/edu/")
    release = read_content(str(tmp_path), tmp_path / "work", ontology)
    assert release.format == "imagefolder" and len(release.skipped) == 0
    assert len(release.items) == 16
    assert {item.view for item in release.items} == {"question", "solution"}
    assert len({item.problem_id for item in release.items}) == 8
    # the kind is the generator folder the file lies in (each row gives a question and a solution image)
    assert sorted(item.kind for item in release.items) == sorted(row["generator"] for row in rows for _ in "QS")
    dataset, summary = build_dataset(release.items, ontology, validation_fraction=0.3)
    assert sum(summary.rows.values()) == 16
    assert split_overlap(dataset) == {"problem_id": [], "image_sha256": []}
    # Tags carry no dimension: the ontology decides it.
    first = json.loads(dataset["train"]["labels"][0])
    for dimension, names in first.items():
        assert all(ontology.concepts[name].dimension == dimension for name in names)


def test_same_tags_resolve_differently_in_an_older_release(tmp_path, ontology, real_tag_sets):
    from edugraph_pipeline_tests.worksheets.worksheet_helpers import load_release

    write_imagefolder_release(tmp_path, real_tag_sets[:40])
    v040 = load_release("v0.4.0")
    release = read_content(str(tmp_path), tmp_path / "work", v040)
    _, old = build_dataset(release.items, v040)
    _, new = build_dataset(release.items, ontology)
    assert new.unknown_labels == {} and old.unknown_labels  # 82 of 307 tags exist in v0.4.0
    assert all(name not in v040 for name in old.unknown_labels)


def test_archive_and_version_hash(tmp_path, ontology, real_tag_sets):
    folder = tmp_path / "release"
    write_imagefolder_release(folder, real_tag_sets[:3])
    archive = make_archive(folder, tmp_path / "worksheets.tar.gz")
    from_archive = read_content(str(archive), tmp_path / "work", ontology)
    from_folder = read_content(str(folder), tmp_path / "work", ontology)
    assert len(from_archive.items) == len(from_folder.items) == 6
    assert len(from_archive.version) == 64 and from_folder.version == folder_version(folder)
    assert list((tmp_path / "work").iterdir()) == []  # scratch folders are removed


def test_folder_of_releases_picks_newest_or_named(tmp_path, ontology, real_tag_sets):
    releases = tmp_path / "releases"
    releases.mkdir()
    for index, tag in enumerate(["v1.2.0", "v1.10.0", "v1.9.3"]):
        folder = tmp_path / f"src-{tag}"
        write_imagefolder_release(folder, real_tag_sets[index : 2 * index + 1])
        make_archive(folder, releases / f"worksheets-{tag}.tar.gz")
    assert list_folder_releases(releases)[-1] == "worksheets-v1.10.0.tar.gz"
    newest = read_content(str(releases), tmp_path / "work", ontology)
    assert len(newest.items) == 4
    named = read_content(str(releases), tmp_path / "work", ontology, release="worksheets-v1.2.0.tar.gz")
    assert len(named.items) == 2
    with pytest.raises(ContentSourceError, match="has no release 'nope.tar.gz'"):
        read_content(str(releases), tmp_path / "work", ontology, release="nope.tar.gz")
    assert ContentSource(source=str(releases)).list_releases()[-1] == "worksheets-v1.10.0.tar.gz"


@pytest.fixture
def http_folder(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_from_url_with_size_cap(tmp_path, ontology, real_tag_sets, http_folder):
    served, base = http_folder
    write_imagefolder_release(tmp_path / "release", real_tag_sets[:2])
    archive = make_archive(tmp_path / "release", served / "worksheets.tar.gz")
    release = read_content(f"{base}/worksheets.tar.gz", tmp_path / "work", ontology)
    assert len(release.items) == 4 and release.source == f"{base}/worksheets.tar.gz"
    small = ContentSource(source=f"{base}/worksheets.tar.gz", max_download_mb=0)
    with pytest.raises(ContentSourceError, match=r"at most 0 allowed|more than 0 bytes"):
        small.read(tmp_path / "work", ontology)
    with pytest.raises(ContentSourceError, match="cannot download .*missing.tar.gz"):
        read_content(f"{base}/missing.tar.gz", tmp_path / "work", ontology)
    assert archive.exists() and list((tmp_path / "work").iterdir()) == []


def test_unknown_source_is_a_clear_error(tmp_path, ontology):
    with pytest.raises(ContentSourceError, match="neither 'sample', an existing folder"):
        read_content(str(tmp_path / "nowhere"), tmp_path / "work", ontology)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ContentSourceError, match="no meta.json .* nor a folder of"):
        read_content(str(tmp_path / "empty"), tmp_path / "work", ontology)
