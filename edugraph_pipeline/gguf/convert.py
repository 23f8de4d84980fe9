"""Merged model folder -> GGUF text model + vision projector (mmproj), quantized with llama.cpp's own tools.

`export_gguf(model_folder, out_folder, quant)` writes into `out_folder`:

```
<name>-<QUANT>.gguf        the text model, quantized (llama-quantize from the F16 conversion)
mmproj-<name>-F16.gguf     the vision projector (kept F16: llama.cpp's recommendation for mmproj)
ontology.json              the bound ontology, copied from the merged model folder
gguf.json                  manifest: files, sizes, quantization, tensor counts/types, image token limits,
                           converter/quantizer versions, the quantizer's fallbacks
```

The text model's chat template is the merged model's behind the production prompts as defaults
(`chat_template`): an image-only request to a server that renders it (llama.cpp's ``llama-server``) classifies.

The converter needs the image processor's settings. It reads ``preprocessor_config.json`` and (this version)
also ``processor_config.json``; when the first is missing (transformers 5 saves only the second) the conversion
runs on a temporary folder of symlinks plus a derived ``preprocessor_config.json``: the merged model artifact is
never modified.

K-quants (Q4_K_M, ...) work on blocks of 256 values along a tensor row. llama-quantize gives a tensor whose rows
are not a multiple of 256 a fallback type (observed on the 128-wide tiny model: q4_K -> q5_0, q6_K -> q8_0, and
the tied token embedding q8_0; "14 of 24 tensor(s) required fallback quantization").
`manifest["quantization"]["fallbacks"]` lists every tensor that missed the requested type (and
`quantizer_reported` the quantizer's own lines), so a small model is reported honestly instead of passing for
Q4_K_M.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from edugraph_pipeline.gguf.chat_template import write_served_template
from edugraph_pipeline.llama_cpp_build import LlamaCpp
from edugraph_pipeline.storage.layout import GGUF_MANIFEST_FILE as MANIFEST  # what the llama.cpp backend reads
from edugraph_pipeline.storage.layout import ONTOLOGY_FILE

# llama-quantize types offered (a subset of its list: the usual ones for CPU inference).
QUANT_TYPES = ("Q4_0", "Q4_1", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16")
MMPROJ_TYPE = "f16"


def normalise_quant(quant: str) -> str:
    """`quant` (the caller's choice: run config, else ``EDUGRAPH_GGUF_QUANT``), upper-cased and checked."""
    value = (quant or "").strip().upper()
    if value not in QUANT_TYPES:
        raise ValueError(f"unknown GGUF quantization {value!r}: one of {', '.join(QUANT_TYPES)}")
    return value


# ---- source folder ---------------------------------------------------------------------------------------------


def derived_preprocessor_config(model_folder: Path) -> dict | None:
    """The image processor settings of a folder that has no ``preprocessor_config.json`` (None: nothing to derive)."""
    processor_config = model_folder / "processor_config.json"
    if processor_config.is_file():
        data = json.loads(processor_config.read_text(encoding="utf-8"))
        if isinstance(data.get("image_processor"), dict):
            config = dict(data["image_processor"])
            config.setdefault("processor_class", data.get("processor_class", ""))
            return config
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(model_folder), local_files_only=True)
    except Exception:  # noqa: BLE001 - no processor: the converter says what it misses
        return None
    image_processor = getattr(processor, "image_processor", None)
    return image_processor.to_dict() if image_processor is not None else None


def prepare_source(model_folder: Path, workdir: Path) -> tuple[Path, str]:
    """The folder to convert (links to the model's files, the served chat template, a derived preprocessor config
    where needed) and how its preprocessor config was found ("present", "derived", "absent")."""
    source = workdir / "source"
    source.mkdir(parents=True)
    for item in model_folder.iterdir():
        (source / item.name).symlink_to(item.resolve())
    # The GGUF carries the production prompts as template defaults: an image-only request classifies.
    write_served_template(model_folder, source)
    if (model_folder / "preprocessor_config.json").is_file():
        return source, "present"
    config = derived_preprocessor_config(model_folder)
    if config is None:
        return source, "absent"
    (source / "preprocessor_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return source, "derived"


def image_token_limits(model_folder: Path) -> dict[str, int]:
    """Qwen-VL's processor bounds the pixels of an image (``size``: shortest_edge = min pixels, longest_edge = max
    pixels); llama.cpp's mtmd takes them as image token counts (pixels / (patch * merge)^2)."""
    config = {}
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = model_folder / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            config = data.get("image_processor", data)
            break
    size = config.get("size") or {}
    min_pixels = config.get("min_pixels") or size.get("shortest_edge")
    max_pixels = config.get("max_pixels") or size.get("longest_edge")
    factor = int(config.get("patch_size", 16)) * int(config.get("merge_size", 2))
    limits = {}
    if min_pixels:
        limits["image_min_tokens"] = max(1, int(min_pixels) // (factor * factor))
    if max_pixels:
        limits["image_max_tokens"] = max(1, int(max_pixels) // (factor * factor))
    return limits


# ---- tools -----------------------------------------------------------------------------------------------------


def convert(llama: LlamaCpp, source: Path, outfile: Path, outtype: str = "f16", mmproj: bool = False) -> str:
    args = [str(llama.converter), str(source), "--outfile", str(outfile), "--outtype", outtype]
    if mmproj:
        args.append("--mmproj")
    return llama.run_python(args)


# "warning: blk.0.attn_q.weight - ncols 128 not divisible by 256 (required for type q4_K) -> falling back to q5_0"
_FALLBACK = re.compile(r"(\S+)\s+-\s+ncols\s+(\d+) not divisible by (\d+) \(required for type\s+(\w+)\)"
                       r"\s*->\s*falling back to\s+(\w+)")


def quantize(llama: LlamaCpp, source: Path, outfile: Path, quant: str, threads: int | None = None) -> dict:
    """llama-quantize `source` to `quant`; the per-tensor fallbacks it reported, and its output's tail."""
    threads = threads or max(1, (os.cpu_count() or 2))
    output = llama.run([str(llama.quantize_bin), str(source), str(outfile), quant, str(threads)])
    reported = {
        m.group(1): f"{m.group(4)} -> {m.group(5)} (ncols {m.group(2)} not divisible by {m.group(3)})"
        for m in _FALLBACK.finditer(output)
    }
    return {"type": quant, "reported_fallbacks": reported, "log_tail": output.splitlines()[-4:]}


_INSPECT = r"""
import json, sys
from collections import Counter
from gguf import GGUFReader
out = {}
for path in sys.argv[1:]:
    r = GGUFReader(path)
    def field(name):
        f = r.fields.get(name)
        if f is None:
            return None
        v = f.contents()
        return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)[:200]
    types = Counter(t.tensor_type.name for t in r.tensors)
    out[path] = {
        "tensor_count": len(r.tensors),
        "tensor_types": dict(sorted(types.items())),
        "parameters": int(sum(int(t.n_elements) for t in r.tensors)),
        "kv_count": len(r.fields),
        "architecture": field("general.architecture"),
        "file_type": field("general.file_type"),
        "tensors": {t.name: t.tensor_type.name for t in r.tensors},
    }
print(json.dumps(out))
"""


def inspect_gguf(llama: LlamaCpp, *paths: Path) -> dict[str, dict]:
    """Tensor counts, tensor types, parameters and header facts of GGUF files, read with llama.cpp's gguf-py."""
    output = llama.run_python(["-c", _INSPECT, *(str(p) for p in paths)])
    data = json.loads(output.strip().splitlines()[-1])
    return {Path(path).name: info for path, info in data.items()}


# ---- the whole export -----------------------------------------------------------------------------------------


def export_gguf(
    model_folder: str | os.PathLike,
    out_folder: str | os.PathLike,
    quant: str,
    *,
    llama: LlamaCpp,
    name: str = "edugraph",
    keep_f16: bool = False,
    threads: int | None = None,
    log=None,
) -> dict:
    """Convert, quantize and inspect; returns (and writes as ``gguf.json``) the manifest."""
    model_folder = Path(model_folder)
    out_folder = Path(out_folder)
    quant = normalise_quant(quant)
    llama = llama.require()
    if not (model_folder / "config.json").is_file():
        raise ValueError(f"{model_folder} holds no model (no config.json)")
    out_folder.mkdir(parents=True, exist_ok=True)
    say = log or (lambda message: None)
    timings: dict[str, float] = {}
    text_file = out_folder / f"{name}-{quant}.gguf"
    mmproj_file = out_folder / f"mmproj-{name}-{MMPROJ_TYPE.upper()}.gguf"
    with tempfile.TemporaryDirectory(prefix=".gguf-work-", dir=out_folder.parent) as tmp:
        work = Path(tmp)
        source, preprocessor = prepare_source(model_folder, work)
        say(f"converting {model_folder} (preprocessor_config.json: {preprocessor})")
        f16_file = (out_folder if keep_f16 else work) / f"{name}-F16.gguf"
        start = time.perf_counter()
        convert(llama, source, f16_file, "f16")
        timings["convert_text_s"] = time.perf_counter() - start
        start = time.perf_counter()
        convert(llama, source, mmproj_file, MMPROJ_TYPE, mmproj=True)
        timings["convert_mmproj_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if quant == "F16":
            shutil.copyfile(f16_file, text_file)
            quantized = {"type": quant, "reported_fallbacks": {}, "log_tail": []}
        else:
            say(f"quantizing to {quant}")
            quantized = quantize(llama, f16_file, text_file, quant, threads)
        timings["quantize_s"] = time.perf_counter() - start
        files = [text_file, mmproj_file] + ([f16_file] if keep_f16 else [])
        inspected = inspect_gguf(llama, f16_file, *files)
        f16_info = inspected[f16_file.name]
        f16_size = f16_file.stat().st_size
    if (model_folder / ONTOLOGY_FILE).is_file():
        shutil.copyfile(model_folder / ONTOLOGY_FILE, out_folder / ONTOLOGY_FILE)
    text_info = inspected[text_file.name]
    fallbacks = _fallbacks(f16_info["tensors"], text_info["tensors"], quant)
    manifest = {
        "format": 1,
        "quantization": {
            "requested": quant,
            "file_type": text_info["file_type"],
            "tensor_types": text_info["tensor_types"],
            "fallbacks": fallbacks,
            "quantizer_reported": quantized["reported_fallbacks"],
            "quantizer_log_tail": quantized["log_tail"],
        },
        "text_model": _file_entry(text_file, text_info),
        "mmproj": _file_entry(mmproj_file, inspected[mmproj_file.name]),
        "f16_size_bytes": f16_size,
        "compression": round(f16_size / max(1, text_file.stat().st_size), 3),
        "image_tokens": image_token_limits(model_folder),
        "preprocessor_config": preprocessor,
        "llama_cpp": {"llama_cpp_python": llama.root.name, **llama.build_info()},
        "timings": {key: round(value, 2) for key, value in timings.items()},
        "ontology": ONTOLOGY_FILE if (out_folder / ONTOLOGY_FILE).is_file() else None,
    }
    (out_folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _file_entry(path: Path, info: dict) -> dict:
    return {
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "tensor_count": info["tensor_count"],
        "tensor_types": info["tensor_types"],
        "parameters": info["parameters"],
        "architecture": info["architecture"],
        "file_type": info["file_type"],
    }


# The types a "pure" quant would give its 2-D weights; anything else a quantized tensor got is a fallback (or one
# of the mixes' deliberate upgrades: Q4_K_M stores some attn_v / ffn_down as Q6_K, token embeddings often Q6_K).
_MAIN_TYPE = {"Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K", "Q6_K": "Q6_K"}
_MIX_UPGRADES = {"Q4_K": {"Q5_K", "Q6_K"}, "Q5_K": {"Q6_K"}, "Q6_K": set()}


def _fallbacks(f16_tensors: dict[str, str], quant_tensors: dict[str, str], quant: str) -> dict[str, str]:
    """Tensors that were F16 in the conversion and did not get the quant's main type (or a planned upgrade)."""
    main = _MAIN_TYPE.get(quant)
    if main is None:
        return {}
    allowed = {main} | _MIX_UPGRADES[main]
    return {
        name: kind
        for name, kind in sorted(quant_tensors.items())
        if f16_tensors.get(name) == "F16" and kind not in allowed
    }


def summarise(manifest: dict) -> dict:
    """Flat figures for Dagster metadata."""
    text, mmproj = manifest["text_model"], manifest["mmproj"]
    return {
        "quantization": manifest["quantization"]["requested"],
        "text_model_file": text["file"],
        "text_model_mb": round(text["size_bytes"] / 2**20, 2),
        "text_model_tensors": text["tensor_count"],
        "mmproj_file": mmproj["file"],
        "mmproj_mb": round(mmproj["size_bytes"] / 2**20, 2),
        "mmproj_tensors": mmproj["tensor_count"],
        "f16_mb": round(manifest["f16_size_bytes"] / 2**20, 2),
        "compression_vs_f16": manifest["compression"],
        "fallback_tensors": len(manifest["quantization"]["fallbacks"]),
        "tensor_types": dict(manifest["quantization"]["tensor_types"]),
    }
