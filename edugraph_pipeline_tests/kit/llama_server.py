"""llama.cpp's own ``llama-server`` on an exported GGUF folder, as a subprocess on a free local port (tests, bench).

Started the way upstream deploys it (the GGUF's own chat template through jinja, greedy: temperature 0, top-k 1),
with the image token bounds of the folder's manifest and the context the GGUF backend sizes for one answer, times
the slots. Its web UI is off (the build has none).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edugraph_pipeline.inference.llama_cpp_backend import GgufFiles
from edugraph_pipeline.llama_cpp_build import LlamaCpp
from edugraph_pipeline_tests.kit.processes import free_port, served

__all__ = ["free_port", "llama_server", "server_command"]


def server_command(llama: LlamaCpp, folder: Path, port: int, *, threads: int, parallel: int,
                   max_new_tokens: int) -> list[str]:
    files = GgufFiles.read(folder)
    per_slot = 768 + (files.image_max_tokens or 4096) + max_new_tokens  # as LlamaCppBackend sizes n_ctx
    command = [
        str(llama.server_bin), "-m", str(files.text_model), "--mmproj", str(files.mmproj),
        "--host", "127.0.0.1", "--port", str(port), "-t", str(threads), "-tb", str(threads),
        "-c", str(per_slot * parallel), "-np", str(parallel), "--jinja", "--no-webui",
        "--temp", "0", "--top-k", "1", "-n", str(max_new_tokens), "--no-warmup",
    ]
    if files.image_min_tokens:
        command += ["--image-min-tokens", str(files.image_min_tokens)]
    if files.image_max_tokens:
        command += ["--image-max-tokens", str(files.image_max_tokens)]
    return command


@contextmanager
def llama_server(folder: Path, llama: LlamaCpp, *, threads: int = 1, parallel: int = 1, max_new_tokens: int = 24,
                 timeout: float = 180) -> Iterator[str]:
    """Run ``llama-server`` on `folder` (a gguf_model folder) until the block ends; yield its base URL."""

    def command(port: int) -> list[str]:
        return server_command(llama, Path(folder), port, threads=threads, parallel=parallel,
                              max_new_tokens=max_new_tokens)

    with served(command, name="llama-server", ready_path="/health", timeout=timeout) as url:
        yield url
