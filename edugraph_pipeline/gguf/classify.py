"""The classifier on llama.cpp: a GGUF text model + its mmproj, through the `llama_cpp` binding's mtmd API.

`GgufClassifier` has the interface of `edugraph_pipeline.inference.classifier.Classifier` (`classify`,
`generate_raw`, `describe`), and runs the same classification:

* the same prompt: `prompts.classification_messages()` rendered with the model's own chat template (the GGUF's
  ``tokenizer.chat_template``, rendered by transformers' `render_jinja_template`, as `apply_chat_template` does),
  plus the forced answer prefix ``{"``; the image placeholder becomes mtmd's media marker (mtmd adds
  ``<|vision_start|>``/``<|vision_end|>`` around the image embeddings itself);
* the same image token bounds as the transformers processor (from the GGUF folder's manifest);
* greedy decoding with the same vocabulary mask (`AnswerVocabulary` over the GGUF's tokenizer) and the same stop
  once the JSON object closes;
* the same repair (`answers.parse_answer`) into `ClassifyResult`s.

Images are classified one at a time (llama.cpp has no batched multimodal generation in this binding);
`batch_size` is accepted for interface compatibility and ignored.

The Python binding cannot be loaded from PyPI here without a second 15-minute compile, so the build script keeps
the sdist's `llama_cpp` package next to the shared libraries of the one CMake build; `LlamaCpp.import_binding`
puts it on `sys.path`. `mtmd_smoke(...)` runs the same files through the `llama-mtmd-cli` binary as an
independent check that they load.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edugraph_pipeline.gguf.convert import MANIFEST, ONTOLOGY_FILE
from edugraph_pipeline.gguf.toolchain import LlamaCpp
from edugraph_pipeline.inference.answers import DEFAULT_FUZZY_CUTOFF, LabelResolver
from edugraph_pipeline.inference.classifier import (
    ANSWER_PREFIX,
    DEFAULT_MAX_NEW_TOKENS,
    MAX_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    AnswerVocabulary,
    ClassifyResult,
    ModelFolderError,
    classify_inputs,
    load_image,
)
from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.prompts import classification_messages

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
GGUF_ASSET = "gguf_model"
THREADS_ENV = "EDUGRAPH_GGUF_THREADS"


def default_threads() -> int:
    """`EDUGRAPH_GGUF_THREADS`, else half the logical CPUs (llama.cpp's own default: physical cores).

    Measured here (2 shared cores, load ~3.7): the tiny model decodes a token in 1.4 ms with 1 thread and in
    200 ms with 2, because ggml's threads spin-wait at every op barrier for a descheduled sibling. Threads
    beyond the free cores cost far more than they give."""
    configured = os.environ.get(THREADS_ENV, "").strip()
    if configured:
        return max(1, int(configured))
    return max(1, (os.cpu_count() or 2) // 2)


def render_prompt(chat_template: str, prefix: str = ANSWER_PREFIX) -> str:
    """The classification prompt exactly as the transformers path renders it (generation prompt + prefix)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[classification_messages()], chat_template=chat_template, add_generation_prompt=True
    )
    return rendered[0] + prefix


def latest_gguf_folder(root: str | os.PathLike | None = None) -> Path:
    """``<EDUGRAPH_DATA_DIR>/gguf_model/latest`` (the `gguf_model` asset's folder)."""
    if root is None:
        from edugraph_pipeline import settings

        root = settings.data_dir()
    folder = Path(root) / GGUF_ASSET / "latest"
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"no GGUF model in {folder} (no {MANIFEST}): materialize gguf_model first")
    return folder


class _JsonEnd:
    """Depth tracker of the answer's JSON object (the prefix included): done once it closes."""

    def __init__(self, prefix: str):
        self.depth, self.in_string, self.escape, self.done = 0, False, False, False
        self.feed(prefix)

    def feed(self, text: str) -> None:
        for char in text:
            if self.in_string:
                if self.escape:
                    self.escape = False
                elif char == "\\":
                    self.escape = True
                elif char == '"':
                    self.in_string = False
            elif char == '"':
                self.in_string = True
            elif char in "{[":
                self.depth += 1
            elif char in "}]":
                self.depth -= 1
                if self.depth <= 0:
                    self.done = True
                    return


class _TokenizerView:
    """What `AnswerVocabulary` needs of a tokenizer, over llama.cpp's."""

    def __init__(self, llm):
        self.llm = llm

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=False))


class GgufClassifier:
    """A loaded GGUF text model + mmproj + bound ontology."""

    def __init__(
        self,
        text_model: str | os.PathLike,
        mmproj: str | os.PathLike,
        ontology: Ontology,
        *,
        image_min_tokens: int | None = None,
        image_max_tokens: int | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        constrain: bool = True,
        prefix: str = ANSWER_PREFIX,
        fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF,
        n_threads: int | None = None,
        n_ctx: int | None = None,
        verbose: bool = False,
        llama: LlamaCpp | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ):
        self.llama = (llama or LlamaCpp.locate()).require()
        llama_cpp = self.llama.import_binding()
        import llama_cpp.mtmd_cpp as mtmd
        from llama_cpp._logger import llama_log_callback

        self._lib = llama_cpp
        self._mtmd = mtmd
        # mtmd logs through llama-cpp-python's callback (filtered by its logger's level, as llama's own are) rather
        # than being silenced by redirecting the process's stdout/stderr file descriptors: that redirection is
        # process-wide and swallowed whatever a server's other threads wrote meanwhile.
        mtmd.mtmd_log_set(llama_log_callback, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(llama_log_callback, ctypes.c_void_p(0))
        self.text_model, self.mmproj = Path(text_model), Path(mmproj)
        self.ontology = ontology
        self.max_new_tokens = max_new_tokens
        self.constrain = constrain
        self.prefix = prefix
        self.max_file_bytes, self.max_pixels = max_file_bytes, max_pixels
        self.resolver = LabelResolver(ontology, fuzzy_cutoff)
        self.n_threads = n_threads or default_threads()
        image_budget = image_max_tokens or 4096
        self.n_ctx = n_ctx or (768 + image_budget + max_new_tokens)
        start = time.perf_counter()
        self.llm = llama_cpp.Llama(
            model_path=str(self.text_model), n_ctx=self.n_ctx, n_batch=self.n_ctx, n_ubatch=min(self.n_ctx, 4096),
            n_threads=self.n_threads, n_threads_batch=self.n_threads, n_gpu_layers=0, verbose=verbose,
        )
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = verbose
        params.n_threads = self.n_threads
        params.warmup = False
        if image_min_tokens:
            params.image_min_tokens = int(image_min_tokens)
        if image_max_tokens:
            params.image_max_tokens = int(image_max_tokens)
        self.mtmd_ctx = mtmd.mtmd_init_from_file(str(self.mmproj).encode(), self.llm.model, params)
        if not self.mtmd_ctx:
            raise ModelFolderError(f"{self.mmproj}: llama.cpp cannot load this vision projector")
        if not mtmd.mtmd_support_vision(self.mtmd_ctx):
            raise ModelFolderError(f"{self.mmproj}: the projector has no vision encoder")
        self.load_seconds = time.perf_counter() - start
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFolderError(f"{self.text_model}: no tokenizer.chat_template in the GGUF metadata")
        marker = mtmd.mtmd_default_marker().decode("utf-8")
        self.prompt = render_prompt(template, prefix)
        if IMAGE_PLACEHOLDER not in self.prompt:
            raise ModelFolderError("the chat template renders no Qwen-VL image placeholder")
        self.mtmd_prompt = self.prompt.replace(IMAGE_PLACEHOLDER, marker, 1)
        self.eos_ids = self._eos_ids()
        self.vocabulary = AnswerVocabulary(_TokenizerView(self.llm), ontology, self.eos_ids) if constrain else None
        self._mask = None
        if self.vocabulary is not None:
            import numpy as np

            self._mask = np.full(self.llm.n_vocab(), -np.inf, dtype=np.float32)
            self._mask[[i for i in self.vocabulary.ids if i < self.llm.n_vocab()]] = 0.0

    def _eos_ids(self) -> list[int]:
        ids = [int(self.llm.token_eos())]
        for token in ("<|im_end|>", "<|endoftext|>"):
            pieces = self.llm.tokenize(token.encode(), add_bos=False, special=True)
            if len(pieces) == 1:
                ids.append(int(pieces[0]))
        return list(dict.fromkeys(i for i in ids if i >= 0))

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike, ontology_path: str | os.PathLike | None = None, **kwargs: Any
    ) -> GgufClassifier:
        """Load a `gguf_model` folder (its ``gguf.json`` names the files) and its bound ontology."""
        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise ModelFolderError(f"{folder}: no {MANIFEST}, not a gguf_model folder")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        ontology_file = Path(ontology_path) if ontology_path is not None else folder / ONTOLOGY_FILE
        if not ontology_file.is_file():
            raise ModelFolderError(f"{ontology_file}: no bound ontology (pass an ontology file explicitly)")
        try:
            ontology = Ontology.load(ontology_file)
        except ValueError as error:
            raise ModelFolderError(str(error)) from error
        limits = manifest.get("image_tokens", {})
        kwargs.setdefault("image_min_tokens", limits.get("image_min_tokens"))
        kwargs.setdefault("image_max_tokens", limits.get("image_max_tokens"))
        return cls(folder / manifest["text_model"]["file"], folder / manifest["mmproj"]["file"], ontology, **kwargs)

    def close(self) -> None:
        if getattr(self, "mtmd_ctx", None):
            self._mtmd.mtmd_free(self.mtmd_ctx)
            self.mtmd_ctx = None
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None

    def __enter__(self) -> GgufClassifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- generation -------------------------------------------------------------------------------------------

    def _evaluate_prompt(self, image) -> None:
        mtmd, lib, llm = self._mtmd, self._lib, self.llm
        rgb = image.tobytes()
        bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb))
        if not bitmap:
            raise RuntimeError("mtmd could not take the image")
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            text = mtmd.mtmd_input_text()
            encoded = self.mtmd_prompt.encode("utf-8")
            text.text, text.text_len, text.add_special, text.parse_special = encoded, len(encoded), True, True
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            status = mtmd.mtmd_tokenize(self.mtmd_ctx, chunks, ctypes.byref(text), bitmaps, 1)
            if status != 0:
                raise RuntimeError(f"mtmd_tokenize failed ({status})")
            llm.reset()
            llm._ctx.kv_cache_clear()
            for index in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, index)
                kind = mtmd.mtmd_input_chunk_get_type(chunk)
                if kind == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    count = ctypes.c_size_t()
                    pointer = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                    tokens = [pointer[i] for i in range(count.value)]
                    if llm.n_tokens + len(tokens) > self.n_ctx:
                        raise RuntimeError(f"prompt exceeds n_ctx {self.n_ctx}")
                    llm.eval(tokens)
                else:
                    if llm.n_tokens + mtmd.mtmd_input_chunk_get_n_tokens(chunk) > self.n_ctx:
                        raise RuntimeError(f"image exceeds n_ctx {self.n_ctx}")
                    new_past = lib.llama_pos(0)
                    status = mtmd.mtmd_helper_eval_chunk_single(
                        self.mtmd_ctx, llm._ctx.ctx, chunk, lib.llama_pos(llm.n_tokens), lib.llama_seq_id(0),
                        llm.n_batch, False, ctypes.byref(new_past),
                    )
                    if status != 0:
                        raise RuntimeError(f"mtmd could not evaluate the image ({status})")
                    llm.n_tokens = new_past.value
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def _generate_one(self, image) -> str:
        import numpy as np

        llm, lib = self.llm, self._lib
        self._evaluate_prompt(image)
        stop = _JsonEnd(self.prefix)
        tokens: list[int] = []
        n_vocab = llm.n_vocab()
        for _ in range(self.max_new_tokens):
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            if self._mask is not None:
                logits = logits + self._mask
            token = int(np.argmax(logits))
            if token in self.eos_ids:
                break
            tokens.append(token)
            stop.feed(llm.detokenize([token], prev_tokens=tokens[:-1]).decode("utf-8", errors="ignore"))
            if stop.done or llm.n_tokens + 1 >= self.n_ctx:
                break
            llm.eval([token])
        return self.prefix + llm.detokenize(tokens).decode("utf-8", errors="ignore")

    def generate_raw(self, images: Sequence, batch_size: int = 1) -> list[str]:
        """The model's text for each (already loaded, RGB) image, in order; the forced prefix included."""
        return [self._generate_one(image) for image in images]

    def classify(self, images: Sequence, batch_size: int = 1, errors: str = "raise") -> list[ClassifyResult]:
        """One result per input (PIL images or paths), in order; `errors` as in `Classifier.classify`."""
        return classify_inputs(self, images, batch_size, errors)

    def describe(self) -> dict:
        return {
            "backend": "gguf",
            "text_model": self.text_model.name,
            "mmproj": self.mmproj.name,
            "max_new_tokens": self.max_new_tokens,
            "constrain": self.constrain,
            "prefix": self.prefix,
            "vocabulary_tokens": len(self.vocabulary.ids) if self.vocabulary else None,
            "ontology_version": self.ontology.version,
            "n_threads": self.n_threads,
            "n_ctx": self.n_ctx,
        }


def classify_images(
    images: Sequence, folder: str | os.PathLike | None = None, ontology_path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> list[str]:
    """The raw model text per image (the forced prefix included) through llama.cpp; `folder` defaults to the
    latest `gguf_model` artifact. Unusable images raise `ImageInputError`."""
    with GgufClassifier.from_folder(folder or latest_gguf_folder(), ontology_path, **kwargs) as classifier:
        loaded = [load_image(image, classifier.max_file_bytes, classifier.max_pixels) for image in images]
        return classifier.generate_raw(loaded)


def mtmd_smoke(
    folder: str | os.PathLike, image: str | os.PathLike, *, llama: LlamaCpp | None = None, n_predict: int = 8,
    image_tokens: dict | None = None, timeout: float = 300,
) -> str:
    """Run `llama-mtmd-cli` on a GGUF folder and an image file: its output (proves the files load in llama.cpp's
    own CLI, independently of the Python binding)."""
    llama = (llama or LlamaCpp.locate()).require()
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    limits = image_tokens if image_tokens is not None else manifest.get("image_tokens", {})
    command = [
        str(llama.mtmd_cli_bin), "-m", str(folder / manifest["text_model"]["file"]),
        "--mmproj", str(folder / manifest["mmproj"]["file"]), "--image", str(image),
        "-p", "Describe the picture.", "-n", str(n_predict), "--temp", "0", "-t", str(default_threads()),
        "--no-warmup",
    ]
    if limits.get("image_min_tokens"):
        command += ["--image-min-tokens", str(limits["image_min_tokens"])]
    if limits.get("image_max_tokens"):
        command += ["--image-max-tokens", str(limits["image_max_tokens"])]
    return llama.run(command, timeout=timeout)
