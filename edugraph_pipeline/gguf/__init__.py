"""GGUF export of the merged model for llama.cpp (Q4_K_M text model + Qwen3-VL mmproj): build, convert, smoke, publish.

The classifier on the exported files is `inference.llama_cpp_backend` (this package may import `inference`, never
the reverse); where the llama.cpp build lives is `edugraph_pipeline.llama_cpp_build`, which both use. Heavy pieces (the llama.cpp build, the `llama_cpp`
binding) are loaded lazily: importing this package is cheap.
"""

from edugraph_pipeline.gguf.convert import MANIFEST, QUANT_TYPES, export_gguf, normalise_quant
from edugraph_pipeline.gguf.publish import gguf_repo_id, publish_gguf
from edugraph_pipeline.llama_cpp_build import DIR_ENV, LLAMA_CPP_PYTHON_VERSION, LlamaCpp, LlamaCppMissing, ToolError

__all__ = [
    "DIR_ENV",
    "LLAMA_CPP_PYTHON_VERSION",
    "MANIFEST",
    "QUANT_TYPES",
    "LlamaCpp",
    "LlamaCppMissing",
    "ToolError",
    "export_gguf",
    "gguf_repo_id",
    "normalise_quant",
    "publish_gguf",
]
