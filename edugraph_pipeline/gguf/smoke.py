"""Proof that a `gguf_model` folder loads and generates in llama.cpp: text, image (binding), image (CLI)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from edugraph_pipeline.gguf.convert import MANIFEST
from edugraph_pipeline.gguf.toolchain import LlamaCpp

SMOKE_FILE = "smoke.json"
TEXT_PROMPT = "<|im_start|>user\nWhat is 3 + 4?<|im_end|>\n<|im_start|>assistant\n"


def smoke_picture():
    """A small worksheet-like picture (what the classifier would see)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (224, 160), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 40), "3 + 4 = ___", fill="black")
    draw.text((20, 90), "5 + 2 = ___", fill="black")
    return image


def smoke_test(folder: str | Path, *, llama: LlamaCpp | None = None, cli: bool = True, n_predict: int = 8) -> dict:
    """Text generation through `llama_cpp.Llama`, one classification through `GgufClassifier` (mtmd), and
    optionally `llama-mtmd-cli` on the same image; timings and outputs (the untrained tiny model's are garbage:
    this proves the files load and run, not quality)."""
    from edugraph_pipeline.gguf.classify import GgufClassifier, default_threads, mtmd_smoke

    llama = (llama or LlamaCpp.locate()).require()
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    report: dict = {}
    llama_cpp = llama.import_binding()
    start = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=str(folder / manifest["text_model"]["file"]), n_ctx=256, n_threads=default_threads(), verbose=False
    )
    try:
        completion = llm.create_completion(TEXT_PROMPT, max_tokens=n_predict, temperature=0.0)
        report["text"] = {
            "completion": completion["choices"][0]["text"],
            "completion_tokens": completion["usage"]["completion_tokens"],
            "seconds": round(time.perf_counter() - start, 3),
        }
    finally:
        llm.close()
    picture = smoke_picture()
    start = time.perf_counter()
    with GgufClassifier.from_folder(folder, llama=llama, max_new_tokens=48) as classifier:
        loaded = time.perf_counter()
        result = classifier.classify([picture])[0]
        report["image"] = {
            "raw": result.raw,
            "answer": result.answer,
            "parsed_ok": result.parsed_ok,
            "repaired": result.repaired,
            "load_seconds": round(loaded - start, 3),
            "classify_seconds": round(time.perf_counter() - loaded, 3),
            "backend": "llama_cpp binding (mtmd)",
        }
    if cli:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "smoke.png"
            picture.save(path)
            start = time.perf_counter()
            output = mtmd_smoke(folder, path, llama=llama, n_predict=n_predict)
            lines = output.strip().splitlines()
            report["mtmd_cli"] = {
                "ok": True,
                "seconds": round(time.perf_counter() - start, 3),
                "image_encoding": [line.split(" I ", 1)[-1] for line in lines if "mtmd batch" in line][-2:],
                "completion": lines[-1] if lines else "",
                "backend": "llama-mtmd-cli",
            }
    return report
