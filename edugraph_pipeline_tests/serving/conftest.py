"""Fixtures of the serving tests: the tiny model as a served model and exported to GGUF; hand-made PNG files
(bombs, lies)."""

from __future__ import annotations

import struct
import zlib

import pytest

from edugraph_pipeline_tests.inference.conftest import classifier, images, ontology, tiny_model_folder  # noqa: F401


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_of_zeros(width: int, height: int, rows: int | None = None) -> bytes:
    """A greyscale PNG whose header says `width` x `height`; its pixel data is all zeros, so it compresses to
    almost nothing (a decompression bomb). `rows` < height gives a header that promises more than the data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = (b"\0" * (width + 1)) * (height if rows is None else rows)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(
        b"IEND", b""
    )


@pytest.fixture(scope="session")
def served_model(classifier, tiny_model_folder):  # noqa: F811 - the fixtures imported above
    from edugraph_pipeline.serving.model import ServedModel
    from edugraph_pipeline.storage.layout import model_version

    return ServedModel(classifier, tiny_model_folder, model_version(tiny_model_folder))


@pytest.fixture(scope="session")
def gguf_folder(tiny_model_folder, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The tiny model exported to GGUF (Q4_K_M + mmproj) with llama.cpp's tools; needs the llama.cpp build."""
    from edugraph_pipeline.gguf.convert import export_gguf
    from edugraph_pipeline.llama_cpp_build import LlamaCpp
    from edugraph_pipeline_tests.conftest import skip_or_fail

    llama = LlamaCpp.locate()
    if not llama.available():
        skip_or_fail(
            f"llama.cpp build absent in {llama.root} (run scripts/build-llama-cpp.sh or set EDUGRAPH_LLAMA_CPP_DIR)"
        )
    out = tmp_path_factory.mktemp("gguf") / "gguf_model"
    export_gguf(tiny_model_folder, out, "Q4_K_M", llama=llama)
    return out
