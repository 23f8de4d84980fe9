"""Proof that a `gguf_model` folder loads and generates in llama.cpp: text, image (binding), image (CLI)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from edugraph_pipeline.inference.llama_cpp_backend import GgufFiles
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.llama_cpp_build import LlamaCpp
from edugraph_pipeline.ontology.model import DIMENSIONS

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


def smoke_test(folder: str | Path, *, llama: LlamaCpp, cli: bool = True, n_predict: int = 8) -> dict:
    """Text generation through `llama_cpp.Llama`, one classification through the gguf `Classifier` (mtmd), and
    optionally `llama-mtmd-cli` on the same image: what each produced (texts, generated token ids, whether the
    image answer was valid as generated and after repair), timings, and ``checks``/``ok``: whether every path
    generated at least one token and the image path ended in a valid answer. The untrained tiny model's texts
    are garbage: this proves the files load and generate, not quality."""
    from edugraph_pipeline.inference.classifier import Classifier

    llama = llama.require()
    folder = Path(folder)
    text_model = str(GgufFiles.read(folder).text_model)
    report: dict = {}
    llama_cpp = llama.import_binding()
    start = time.perf_counter()
    llm = llama_cpp.Llama(model_path=text_model, n_ctx=256, n_threads=llama.thread_count, verbose=False)
    try:
        completion = llm.create_completion(TEXT_PROMPT, max_tokens=n_predict, temperature=0.0)
        text = completion["choices"][0]["text"]
        report["text"] = {
            "completion": text,
            "completion_tokens": completion["usage"]["completion_tokens"],
            "seconds": round(time.perf_counter() - start, 3),
        }
    finally:
        llm.close()
    picture = smoke_picture()
    start = time.perf_counter()
    with Classifier.from_folder(folder, backend="gguf", llama=llama, max_new_tokens=48) as classifier:
        loaded = time.perf_counter()
        result = classifier.classify([picture])[0]
        report["image"] = {
            "raw": result.raw,
            "answer": result.answer,
            # the model's own text was an answer of known labels, without extraction or repair
            "valid_as_generated": result.parsed_ok and not result.repaired and not result.unknown,
            "repaired": result.repaired,
            "error": result.error,
            "load_seconds": round(loaded - start, 3),
            "classify_seconds": round(time.perf_counter() - loaded, 3),
            "backend": "llama_cpp binding (mtmd)",
        }
    vocabulary = llama_cpp.Llama(model_path=text_model, vocab_only=True, verbose=False)
    try:
        for part, generated in (("text", text), ("image", result.raw)):
            report[part]["tokens"] = vocabulary.tokenize(generated.encode(), add_bos=False, special=True)
    finally:
        vocabulary.close()
    checks = {
        "text generated tokens": report["text"]["completion_tokens"] >= 1,
        "image generated tokens": bool(report["image"]["tokens"]),
        "image answer is valid": result.error is None and _is_answer(result.answer),
    }
    if cli:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "smoke.png"
            picture.save(path)
            start = time.perf_counter()
            output = mtmd_smoke(folder, path, llama=llama, n_predict=n_predict)
            lines = output.strip().splitlines()
            encoding = [line.split(" I ", 1)[-1] for line in lines if "mtmd batch" in line][-2:]
            completion = lines[-1] if lines and not any(mark in lines[-1] for mark in ("mtmd", "llama_", "ggml_")) else ""
            report["mtmd_cli"] = {
                "ok": bool(encoding) and bool(completion.strip()),
                "seconds": round(time.perf_counter() - start, 3),
                "image_encoding": encoding,
                "completion": completion,
                "backend": "llama-mtmd-cli",
            }
        checks["mtmd-cli encoded the image"] = bool(encoding)
        checks["mtmd-cli generated text"] = bool(completion.strip())
    report["checks"] = checks
    report["ok"] = all(checks.values())
    return report


def _is_answer(answer) -> bool:
    """An upstream answer object: a label list per dimension, or the refusal."""
    if answer == UNSUPPORTED_MATERIAL:
        return True
    return isinstance(answer, dict) and list(answer) == list(DIMENSIONS) and all(
        isinstance(labels, list) and all(isinstance(name, str) for name in labels) for labels in answer.values()
    )


def mtmd_smoke(
    folder: str | Path, image: str | Path, *, llama: LlamaCpp, n_predict: int = 8,
    image_tokens: dict | None = None, timeout: float = 300,
) -> str:
    """Run `llama-mtmd-cli` on a GGUF folder and an image file: its output (proves the files load in llama.cpp's
    own CLI, independently of the Python binding)."""
    llama = llama.require()
    files = GgufFiles.read(Path(folder))
    if image_tokens is None:
        image_tokens = {"image_min_tokens": files.image_min_tokens, "image_max_tokens": files.image_max_tokens}
    command = [
        str(llama.mtmd_cli_bin), "-m", str(files.text_model), "--mmproj", str(files.mmproj), "--image", str(image),
        "-p", "Describe the picture.", "-n", str(n_predict), "--temp", "0", "-t", str(llama.thread_count),
        "--no-warmup",
    ]
    if image_tokens.get("image_min_tokens"):
        command += ["--image-min-tokens", str(image_tokens["image_min_tokens"])]
    if image_tokens.get("image_max_tokens"):
        command += ["--image-max-tokens", str(image_tokens["image_max_tokens"])]
    return llama.run(command, timeout=timeout)
