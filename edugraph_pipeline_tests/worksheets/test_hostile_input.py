"""Hostile and broken content: nothing escapes the work folder, broken items are skipped with their reason."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edugraph_pipeline.worksheets.archive import ArchiveRejected, safe_extract
from edugraph_pipeline.worksheets.content_formats import read_folder
from edugraph_pipeline.worksheets.content_release import ContentLimits, ContentSourceError
from edugraph_pipeline.worksheets.content_sources import read_content
from edugraph_pipeline.worksheets.dataset import build_dataset
from edugraph_pipeline.worksheets.images import ImageRejected, normalise_image
from edugraph_pipeline_tests.worksheets.worksheet_helpers import png_bytes, write_imagine_release


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


def hostile_archive(path: Path, outside: Path) -> Path:
    metadata = json.dumps({"file_name": "m/ok_mode-Q.png", "tags": ["Addition"], "solution": False}) + "\n"
    with tarfile.open(path, "w:gz") as tar:
        add_file(tar, "train/metadata.jsonl", metadata.encode())
        add_file(tar, "train/m/ok_mode-Q.png", png_bytes())
        add_file(tar, "../escape.txt", b"x")
        add_file(tar, str(outside / "absolute.txt"), b"x")
        add_special(tar, "train/m/link-out", tarfile.SYMTYPE, str(outside / "target"))
        add_special(tar, "train/m/hard-out", tarfile.LNKTYPE, "../../etc/passwd")
        add_special(tar, "train/m/inside-link", tarfile.SYMTYPE, "ok_mode-Q.png")
        add_special(tar, "dev/null-device", tarfile.CHRTYPE)
        add_special(tar, "dev/fifo", tarfile.FIFOTYPE)
    return path


def test_hostile_archive_members_are_skipped_and_nothing_escapes(tmp_path, ontology):
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = hostile_archive(tmp_path / "hostile.tar.gz", outside)
    work = tmp_path / "deep" / "work"
    release = read_content(str(archive), work, ontology)
    assert len(release.items) == 1
    reasons = release.skipped.reasons()
    assert reasons == {"unsafe archive member": 7}
    details = {where.split("!")[1]: detail for where, _, detail in release.skipped.entries}
    assert "links are not allowed" in details["train/m/link-out"]
    assert "links are not allowed" in details["train/m/hard-out"]
    assert details["dev/null-device"] == "device or special file"
    assert details["../escape.txt"] == "path leaves the extraction folder"
    assert details[str(outside / "absolute.txt")] == "absolute path"
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "deep" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


def test_decompression_bomb_is_refused(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(3):
            add_file(tar, f"zeros-{index}.bin", bytes(400_000))  # compresses to a few hundred bytes each
    assert archive.stat().st_size < 10_000
    with pytest.raises(ArchiveRejected, match="more than 1000000 bytes; refusing a possible decompression bomb"):
        safe_extract(archive, tmp_path / "out", max_total_bytes=1_000_000)
    with pytest.raises(ArchiveRejected, match="more than 2 members"):
        safe_extract(archive, tmp_path / "out2", max_members=2)


def test_bomb_through_the_content_reader_names_the_source(tmp_path, ontology):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        add_file(tar, "zeros.bin", bytes(2_000_000))
    with pytest.raises(ContentSourceError, match=r"bomb\.tar\.gz.*decompression bomb"):
        read_content(str(archive), tmp_path / "work", ontology, limits=ContentLimits(max_archive_bytes=1_000_000))


def test_corrupt_archive_is_a_clear_error(tmp_path, ontology):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    with pytest.raises(ContentSourceError, match=r"broken\.tar\.gz: not a readable \.tar\.gz archive"):
        read_content(str(archive), tmp_path / "work", ontology)


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_image_modes_are_normalised_to_rgb():
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))
    palette = Image.new("P", (20, 10), 3)
    deep = Image.fromarray(np.full((10, 20), 40000, dtype=np.uint16)).convert("I;16")
    deep_gradient = Image.fromarray(np.arange(200, dtype=np.uint16).reshape(10, 20) * 300)
    cases = {"rgba": encoded(rgba), "cmyk": encoded(cmyk, "JPEG"), "palette": encoded(palette),
             "i16": encoded(deep), "i16-gradient": encoded(deep_gradient)}
    for name, data in cases.items():
        result = normalise_image(data, name)
        image = Image.open(io.BytesIO(result.data))
        image.load()
        assert image.mode == "RGB" and image.size == (20, 10) and result.reencoded, name
    # Fully transparent pixels become white paper, not black.
    assert Image.open(io.BytesIO(normalise_image(cases["rgba"], "rgba").data)).getpixel((0, 0)) == (255, 255, 255)
    assert Image.open(io.BytesIO(normalise_image(cases["i16"], "i16").data)).getpixel((0, 0)) == (0, 0, 0)
    assert Image.open(io.BytesIO(normalise_image(cases["i16-gradient"], "g").data)).getpixel((19, 9)) == (
        255, 255, 255)


def test_plain_rgb_png_keeps_its_bytes():
    data = png_bytes()
    result = normalise_image(data, "plain.png")
    assert result.data is data and not result.reencoded


def test_broken_and_huge_images_are_rejected_or_downscaled():
    whole = png_bytes(size=(300, 300), mode="RGB", colour=(1, 2, 3))
    noisy = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)))
    with pytest.raises(ImageRejected, match="corrupt image: truncated.png: cannot decode"):
        normalise_image(noisy[: len(noisy) // 2], "truncated.png")
    with pytest.raises(ImageRejected, match="not a readable image: garbage.png"):
        normalise_image(b"not an image at all", "garbage.png")
    with pytest.raises(ImageRejected, match=r"image too large: big.png: 300x300 = 90000 pixels, at most 50000"):
        normalise_image(whole, "big.png", max_pixels=50_000)
    downscaled = normalise_image(whole, "wide.png", max_side=100)
    assert Image.open(io.BytesIO(downscaled.data)).size == (100, 100)


def test_decompression_bomb_image_is_rejected_before_decoding():
    # 20000 x 20000 pixels of one colour: a PNG of a few hundred kilobytes that would decode to 1.2 GB.
    bomb = encoded(Image.new("L", (20000, 20000)))
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageRejected, match="(image too large|not a readable image): bomb.png"):
        normalise_image(bomb, "bomb.png")


def test_broken_items_in_a_release_are_skipped_and_counted(tmp_path, ontology, real_tag_sets):
    write_imagine_release(tmp_path / "rel", [real_tag_sets[0]["tags"], real_tag_sets[1]["tags"]], ontology,
                          "http://edugraph.io/edu/")
    module = tmp_path / "rel" / "addition"
    (module / "a1.png").unlink()  # missing image
    noisy = encoded(Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 80, 3), dtype=np.uint8)))
    (module / "q1.png").write_bytes(noisy[:200])  # truncated
    broken_module = tmp_path / "rel" / "broken"
    broken_module.mkdir()
    (broken_module / "meta.json").write_text('[\n {"questionImage": "x.png",\n  "labels": {oops}\n]')
    odd = tmp_path / "rel" / "odd"
    odd.mkdir()
    (odd / "q.png").write_bytes(png_bytes())
    (odd / "meta.json").write_text(json.dumps([
        "not an object",
        {"questionImage": "q.png", "labels": ["Addition"]},
        {"questionImage": "q.png", "labels": {"Area": "Addition"}},
        {"questionImage": "../../../etc/passwd", "labels": {"Area": ["Addition"]}},
        {"questionImage": "q.png", "labels": {"Area": ["NoSuchConcept"], "Scope": [], "Ability": []}},
    ]))
    jsonl = tmp_path / "rel" / "train"
    jsonl.mkdir()
    (jsonl / "metadata.jsonl").write_text(
        '{"file_name": "m/a.png", "tags": ["Addition"]}\n'
        "{broken json\n"
        '{"tags": ["Addition"]}\n'
        '{"file_name": "m/b.png", "tags": "Addition"}\n'
        '{"file_name": "m/c.png", "tags": ["Addition"], "solution": "yes"}\n'
    )
    release = read_folder(tmp_path / "rel", "rel", "v")
    reasons = release.skipped.reasons()
    assert reasons == {
        "missing image": 2,  # addition a1.png, and m/a.png of the jsonl release
        "corrupt image": 1,
        "malformed meta.json": 1,
        "malformed meta.json entry": 3,
        "image path outside the release": 1,
        "malformed metadata.jsonl row": 4,
    }, release.skipped.entries
    details = [detail for _, _, detail in release.skipped.entries]
    assert "broken/meta.json line 3 column 14: Expecting property name enclosed in double quotes" in details
    assert "train/metadata.jsonl:3: field 'file_name' is missing or not a string" in details
    assert "train/metadata.jsonl:4: field 'tags' must be a list of concept names or IRIs, got str" in details
    assert any(d.startswith("train/metadata.jsonl:2: Expecting property name") for d in details)
    assert "odd/meta.json[2]: field 'labels.Area' must be a list of concept names or IRIs, got str" in details

    dataset, summary = build_dataset(release.items, ontology, skipped=release.skipped)
    # Surviving: q0+a0 (known labels) and odd[4] whose only label is unknown -> skipped after labelling.
    assert summary.unknown_labels == {"NoSuchConcept": 1}
    assert summary.skipped_reasons["no label known to the ontology"] == 1
    assert sum(summary.rows.values()) == 2


def test_release_without_usable_items_names_the_source(tmp_path, ontology):
    from edugraph_pipeline.worksheets.content_sources import read_content as read

    (tmp_path / "rel" / "train").mkdir(parents=True)
    (tmp_path / "rel" / "train" / "metadata.jsonl").write_text('{"file_name": "m/gone.png", "tags": ["X"]}\n')
    release = read(str(tmp_path / "rel"), tmp_path / "work", ontology)
    assert release.items == [] and release.skipped.reasons() == {"missing image": 1}


def sparse_file(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (and must never be read whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def test_oversized_metadata_and_images_are_refused_before_they_are_read(tmp_path):
    from edugraph_pipeline.worksheets.imagefolder import MAX_METADATA_BYTES
    from edugraph_pipeline.worksheets.images import MAX_IMAGE_BYTES

    sparse_file(tmp_path / "rel" / "huge" / "metadata.jsonl", MAX_METADATA_BYTES + 1)
    sparse_file(tmp_path / "rel" / "big" / "meta.json", MAX_METADATA_BYTES + 1)
    train = tmp_path / "rel" / "train"
    sparse_file(train / "m" / "giant_mode-Q.png", MAX_IMAGE_BYTES + 1)
    (train / "m" / "ok_mode-Q.png").write_bytes(png_bytes())
    (train / "metadata.jsonl").write_text(
        '{"file_name": "m/giant_mode-Q.png", "tags": ["Addition"]}\n'
        '[1, 2]\n'
        f'{{"file_name": "m/ok_mode-Q.png", "tags": ["Addition"], "note": "{"x" * 100_000}"}}\n'
    )
    release = read_folder(tmp_path / "rel", "rel", "v")
    assert release.skipped.reasons() == {
        "unreadable metadata.jsonl": 1, "unreadable meta.json": 1, "image file too large": 1,
        "malformed metadata.jsonl row": 1,
    }, release.skipped.entries
    details = " | ".join(detail for _, _, detail in release.skipped.entries)
    assert f"huge/metadata.jsonl: {MAX_METADATA_BYTES + 1} bytes, at most {MAX_METADATA_BYTES}" in details
    assert f"m/giant_mode-Q.png: {MAX_IMAGE_BYTES + 1} bytes, at most {MAX_IMAGE_BYTES}" in details
    assert "train/metadata.jsonl:2: expected a JSON object, got list" in details
    assert len(release.items) == 1  # the long but well-formed row is kept


class _TruncatingHandler:
    """An HTTP server that announces more bytes than it sends, then drops the connection."""

    @staticmethod
    def serve(announced: int, sent: bytes):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                self.send_response(200)
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                self.wfile.write(sent)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def test_a_truncated_download_is_an_error_and_leaves_no_partial_file(tmp_path):
    from edugraph_pipeline.worksheets.content_sources import download

    server = _TruncatingHandler.serve(announced=10_000, sent=b"\x1f\x8b" + b"\0" * 998)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/release.tar.gz"
        with pytest.raises(ContentSourceError, match=r"release\.tar\.gz.*(IncompleteRead|truncated)"):
            download(url, tmp_path / "release.tar.gz", timeout=10)
    finally:
        server.shutdown()
    assert not (tmp_path / "release.tar.gz").exists()
