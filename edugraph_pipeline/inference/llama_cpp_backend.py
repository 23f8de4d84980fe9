"""An exported GGUF folder (text model + Qwen3-VL mmproj, `gguf_model`) as a backend, through llama.cpp.

The `llama_cpp` binding's mtmd API runs the same classification as `TransformersBackend`:

* the same prompt: the `AnswerSpec` messages rendered with the model's own chat template (the GGUF's
  ``tokenizer.chat_template``, rendered by transformers' `render_jinja_template`, as `apply_chat_template` does),
  plus the forced answer prefix; the image placeholder becomes mtmd's media marker (mtmd adds
  ``<|vision_start|>``/``<|vision_end|>`` around the image embeddings itself);
* the same image token bounds as the transformers processor (from the folder's manifest);
* greedy decoding with the same vocabulary mask (`AnswerVocabulary` over the GGUF's tokenizer) and the same stop
  once the JSON object closes.

Images are generated one at a time (this binding has no batched multimodal generation); `batch_size` is
accepted for the protocol and ignored. The binding comes from the one llama.cpp build (`llama_cpp_build`, shared
with the GGUF export; inference imports nothing of the export package).
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edugraph_pipeline.inference.backend import AnswerSpec, Generation, ModelFolderError
from edugraph_pipeline.inference.constraint import ANSWER_PREFIX, AnswerVocabulary, JsonObjectTracker
from edugraph_pipeline.llama_cpp_build import default_threads
from edugraph_pipeline.prompts import classification_messages
from edugraph_pipeline.storage.layout import GGUF_MANIFEST_FILE as MANIFEST

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def render_prompt(chat_template: str, prefix: str = ANSWER_PREFIX, messages: Sequence[dict] | None = None) -> str:
    """The prompt exactly as the transformers path renders it (generation prompt + prefix); `messages` default
    to the classification prompt."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[list(messages) if messages is not None else classification_messages()],
        chat_template=chat_template, add_generation_prompt=True,
    )
    return rendered[0] + prefix


@dataclass(frozen=True)
class GgufFiles:
    """What a GGUF folder's manifest says the backend needs."""

    text_model: Path
    mmproj: Path
    image_min_tokens: int | None
    image_max_tokens: int | None

    @classmethod
    def read(cls, folder: Path) -> GgufFiles:
        path = folder / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            limits = manifest.get("image_tokens") or {}
            return cls(
                folder / manifest["text_model"]["file"], folder / manifest["mmproj"]["file"],
                limits.get("image_min_tokens"), limits.get("image_max_tokens"),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelFolderError(f"{path}: not a readable GGUF manifest ({error!r})") from error


def load_binding(llama):
    """The `llama_cpp` module of the llama.cpp build `llama` (a `llama_cpp_build.LlamaCpp`); `ModelFolderError`
    saying how to build it when it is absent."""
    from edugraph_pipeline.llama_cpp_build import LlamaCppMissing

    try:
        return llama.import_binding()
    except LlamaCppMissing as error:
        raise ModelFolderError(str(error)) from error


class _TokenizerView:
    """What `AnswerVocabulary` needs of a tokenizer, over llama.cpp's."""

    def __init__(self, llm):
        self.llm = llm

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=add_special_tokens, special=False))


class LlamaCppBackend:
    """A loaded GGUF text model + mmproj generating under an `AnswerSpec`."""

    kind = "gguf"

    def __init__(
        self,
        binding,
        files: GgufFiles,
        spec: AnswerSpec,
        *,
        n_threads: int | None = None,
        n_ctx: int | None = None,
        verbose: bool = False,
        folder: str | os.PathLike | None = None,
    ):
        import llama_cpp.mtmd_cpp as mtmd  # the binding's own submodule: importable once `binding` is
        from llama_cpp._logger import llama_log_callback

        self._lib, self._mtmd = binding, mtmd
        # mtmd logs through llama-cpp-python's callback (filtered by its logger's level, as llama's own are) rather
        # than being silenced by redirecting the process's stdout/stderr file descriptors: that redirection is
        # process-wide and swallowed whatever a server's other threads wrote meanwhile.
        mtmd.mtmd_log_set(llama_log_callback, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(llama_log_callback, ctypes.c_void_p(0))
        self.files, self.spec = files, spec
        self.folder = Path(folder) if folder is not None else None
        self.text_model, self.mmproj = files.text_model, files.mmproj
        self.n_threads = n_threads or default_threads()  # from_folder passes the build's configured count
        self.n_ctx = n_ctx or (768 + (files.image_max_tokens or 4096) + spec.max_new_tokens)
        start = time.perf_counter()
        self.llm = binding.Llama(
            model_path=str(self.text_model), n_ctx=self.n_ctx, n_batch=self.n_ctx, n_ubatch=min(self.n_ctx, 4096),
            n_threads=self.n_threads, n_threads_batch=self.n_threads, n_gpu_layers=0, verbose=verbose,
        )
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = verbose
        params.n_threads = self.n_threads
        params.warmup = False
        if files.image_min_tokens:
            params.image_min_tokens = int(files.image_min_tokens)
        if files.image_max_tokens:
            params.image_max_tokens = int(files.image_max_tokens)
        self.mtmd_ctx = mtmd.mtmd_init_from_file(str(self.mmproj).encode(), self.llm.model, params)
        if not self.mtmd_ctx:
            raise ModelFolderError(f"{self.mmproj}: llama.cpp cannot load this vision projector")
        if not mtmd.mtmd_support_vision(self.mtmd_ctx):
            raise ModelFolderError(f"{self.mmproj}: the projector has no vision encoder")
        self.load_seconds = time.perf_counter() - start
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFolderError(f"{self.text_model}: no tokenizer.chat_template in the GGUF metadata")
        self.prompt = render_prompt(template, spec.prefix, spec.messages)
        if IMAGE_PLACEHOLDER not in self.prompt:
            raise ModelFolderError("the chat template renders no Qwen-VL image placeholder")
        self.mtmd_prompt = self.prompt.replace(IMAGE_PLACEHOLDER, mtmd.mtmd_default_marker().decode("utf-8"), 1)
        self.eos_ids = self._eos_ids()
        self.vocabulary = (
            AnswerVocabulary(_TokenizerView(self.llm), spec.answer_texts, self.eos_ids)
            if spec.answer_texts is not None else None
        )
        self._mask = None
        if self.vocabulary is not None:
            import numpy as np

            self._mask = np.full(self.llm.n_vocab(), -np.inf, dtype=np.float32)
            self._mask[self.vocabulary.within(self.llm.n_vocab())] = 0.0

    @property
    def max_new_tokens(self) -> int:
        return self.spec.max_new_tokens

    def _eos_ids(self) -> list[int]:
        ids = [int(self.llm.token_eos())]
        for token in ("<|im_end|>", "<|endoftext|>"):
            pieces = self.llm.tokenize(token.encode(), add_bos=False, special=True)
            if len(pieces) == 1:
                ids.append(int(pieces[0]))
        return list(dict.fromkeys(i for i in ids if i >= 0))

    @staticmethod
    def check_folder(folder: Path) -> None:
        if not (folder / MANIFEST).is_file():
            raise ModelFolderError(f"{folder}: no {MANIFEST}, not a gguf_model folder")

    @classmethod
    def from_folder(cls, folder: Path, spec: AnswerSpec, *, llama=None, **options: Any) -> LlamaCppBackend:
        """Load the files the folder's manifest names; `llama`: the llama.cpp build (default: the configured one,
        `LlamaCpp.locate()`), whose thread count applies unless `n_threads` is given."""
        from edugraph_pipeline.llama_cpp_build import LlamaCpp

        llama = llama or LlamaCpp.locate()
        options["n_threads"] = options.get("n_threads") or llama.thread_count
        return cls(load_binding(llama), GgufFiles.read(folder), spec, folder=folder, **options)

    def close(self) -> None:
        if getattr(self, "mtmd_ctx", None):
            self._mtmd.mtmd_free(self.mtmd_ctx)
            self.mtmd_ctx = None
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None

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

    def _generate_one(self, image) -> Generation:
        import numpy as np

        llm, lib, prefix = self.llm, self._lib, self.spec.prefix
        self._evaluate_prompt(image)
        prompt_tokens = llm.n_tokens
        stop = JsonObjectTracker(prefix)
        tokens: list[int] = []
        n_vocab = llm.n_vocab()
        finish, ended_by_eos = "length", False
        for _ in range(self.spec.max_new_tokens):
            logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            if self._mask is not None:
                logits = logits + self._mask
            token = int(np.argmax(logits))
            if token in self.eos_ids:
                finish, ended_by_eos = "stop", True
                break
            tokens.append(token)
            closed = stop.feed(llm.detokenize([token], prev_tokens=tokens[:-1]).decode("utf-8", errors="ignore"))
            if closed:
                finish = "stop"
                break
            if llm.n_tokens + 1 >= self.n_ctx:
                break
            llm.eval([token])
        return Generation(
            text=prefix + llm.detokenize(tokens).decode("utf-8", errors="ignore"), prompt_tokens=prompt_tokens,
            completion_tokens=len(tokens) + ended_by_eos, finish_reason=finish,
        )

    def generate(self, images: Sequence, batch_size: int = 1) -> list[Generation]:
        return [self._generate_one(image) for image in images]

    def describe(self) -> dict:
        return {
            "backend": self.kind,
            "text_model": self.text_model.name,
            "mmproj": self.mmproj.name,
            "max_new_tokens": self.spec.max_new_tokens,
            "constrain": self.vocabulary is not None,
            "prefix": self.spec.prefix,
            "vocabulary_tokens": len(self.vocabulary.ids) if self.vocabulary else None,
            "n_threads": self.n_threads,
            "n_ctx": self.n_ctx,
        }
