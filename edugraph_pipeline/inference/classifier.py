"""The classifier: images in, valid upstream answers out, on any backend (`backend.Backend`).

`Classifier` is the one classify path of `edugraph classify`, the service, the evaluation and the GGUF smoke
test: inputs loaded and checked (`images.load_image`), raw answers from the backend, each repaired and
normalised by `answers.parse_answer` against the bound ontology into a `ClassifyResult`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edugraph_pipeline.inference.answers import ParsedAnswer, parse_answer
from edugraph_pipeline.inference.backend import (
    DEFAULT_MAX_NEW_TOKENS,
    AnswerSpec,
    Backend,
    Generation,
    ModelFolderError,
)
from edugraph_pipeline.inference.constraint import ANSWER_PREFIX, answer_texts
from edugraph_pipeline.inference.images import (
    MAX_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    ImageInputError,
    load_image,
    source_name,
)
from edugraph_pipeline.inference.label_resolver import DEFAULT_FUZZY_CUTOFF, LabelResolver
from edugraph_pipeline.labels import format_answer, format_unsupported
from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.prompts import classification_messages
from edugraph_pipeline.storage.layout import (
    ONTOLOGY_FILE,  # the ontology a model folder is bound to (both kinds ship it)
)

BACKENDS = ("transformers", "gguf")


@dataclass
class ClassifyResult:
    source: str
    answer: dict | None  # the upstream answer; None when the input was no usable image
    raw: str = ""
    parsed_ok: bool = False
    repaired: bool = False
    unknown: list[str] = field(default_factory=list)
    remapped: dict[str, str] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    ineligible: list[str] = field(default_factory=list)  # organizational labels of the bound release, dropped
    incompatible: dict[str, str] = field(default_factory=dict)  # label dropped -> the conflict it was in
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""  # "stop" (the model ended its answer) or "length" (it hit the bound; repair closed it)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        """The answer as the exact upstream string."""
        if self.answer is None:
            raise ValueError(f"{self.source}: no answer ({self.error})")
        return format_unsupported() if "Error" in self.answer else format_answer(self.answer)

    @classmethod
    def from_parsed(cls, source: str, parsed: ParsedAnswer, generation: Generation | None = None) -> ClassifyResult:
        return cls(
            source=source,
            answer=parsed.answer,
            raw=parsed.raw,
            parsed_ok=parsed.parsed_ok,
            repaired=parsed.repaired,
            unknown=list(parsed.unknown),
            remapped=dict(parsed.remapped),
            moved=dict(parsed.moved),
            ineligible=list(parsed.ineligible),
            incompatible=dict(parsed.incompatible),
            prompt_tokens=generation.prompt_tokens if generation else 0,
            completion_tokens=generation.completion_tokens if generation else 0,
            finish_reason=generation.finish_reason if generation else "",
        )

    def to_json(self) -> dict:
        return asdict(self)


def answer_json(result: ClassifyResult, include_raw: bool = False) -> str:
    """One output line: the upstream answer object (with ``"raw"`` added when asked)."""
    data = dict(result.answer or {})
    if include_raw:
        data["raw"] = result.raw
    return json.dumps(data, ensure_ascii=False)


def answer_spec(
    ontology: Ontology,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    constrain: bool = True,
    prefix: str = ANSWER_PREFIX,
) -> AnswerSpec:
    """The classification prompt's `AnswerSpec` for `ontology` (`constrain=False`: no vocabulary mask)."""
    return AnswerSpec(
        messages=tuple(classification_messages()),
        prefix=prefix,
        answer_texts=tuple(answer_texts(ontology)) if constrain else None,
        max_new_tokens=max_new_tokens,
    )


def bound_ontology(folder: Path, ontology_path: str | os.PathLike | None = None) -> Ontology:
    """The ontology a model folder ships (``ontology.json``), or the file `ontology_path` names instead."""
    ontology_file = Path(ontology_path) if ontology_path is not None else folder / ONTOLOGY_FILE
    if not ontology_file.is_file():
        raise ModelFolderError(
            f"{ontology_file}: no bound ontology (the model folder should hold {ONTOLOGY_FILE}; "
            "pass an ontology file explicitly)"
        )
    try:
        return Ontology.load(ontology_file)
    except ValueError as error:
        raise ModelFolderError(str(error)) from error


def backend_class(kind: str) -> type:
    """The backend class `kind` names; imported on demand (each pulls in its own runtime)."""
    if kind == "transformers":
        from edugraph_pipeline.inference.transformers_backend import TransformersBackend

        return TransformersBackend
    if kind == "gguf":
        from edugraph_pipeline.inference.llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend
    raise ValueError(f"unknown backend {kind!r}: one of {', '.join(BACKENDS)}")


class Classifier:
    """A backend + its bound ontology + input limits. `classify` is the whole inference path."""

    def __init__(
        self,
        backend: Backend,
        ontology: Ontology,
        *,
        fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ):
        self.backend = backend
        self.ontology = ontology
        self.resolver = LabelResolver(ontology, fuzzy_cutoff)
        self.max_file_bytes, self.max_pixels = max_file_bytes, max_pixels

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        ontology_path: str | os.PathLike | None = None,
        *,
        backend: str = "transformers",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        constrain: bool = True,
        prefix: str = ANSWER_PREFIX,
        fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_pixels: int = MAX_IMAGE_PIXELS,
        **options: Any,
    ) -> Classifier:
        """Load a model folder of `backend`'s format and its bound ontology (`ontology_path` overrides it).

        `options` go to the backend's `from_folder` (transformers: `device`, `dtype`; gguf: `llama`,
        `n_threads`, `n_ctx`, `verbose`)."""
        folder = Path(folder)
        kind = backend_class(backend)
        if not folder.is_dir():
            raise ModelFolderError(f"{folder}: model folder does not exist")
        kind.check_folder(folder)
        ontology = bound_ontology(folder, ontology_path)
        spec = answer_spec(ontology, max_new_tokens=max_new_tokens, constrain=constrain, prefix=prefix)
        loaded = kind.from_folder(folder, spec, **options)
        return cls(loaded, ontology, fuzzy_cutoff=fuzzy_cutoff, max_file_bytes=max_file_bytes, max_pixels=max_pixels)

    def load_inputs(self, images: Sequence) -> tuple[list, list[ClassifyResult | None]]:
        """Loaded images (None where unusable) and, per input, an error result or None."""
        loaded, errors = [], []
        for index, source in enumerate(images):
            name = source_name(source, index)
            try:
                loaded.append(load_image(source, self.max_file_bytes, self.max_pixels))
                errors.append(None)
            except ImageInputError as error:
                message = str(error)
                if message.startswith("<image>"):
                    message = name + message[len("<image>") :]
                loaded.append(None)
                errors.append(ClassifyResult(source=name, answer=None, error=message))
        return loaded, errors

    def classify(self, images: Sequence, batch_size: int = 8, errors: str = "raise") -> list[ClassifyResult]:
        """One result per input (PIL images or paths), in order.

        `errors="raise"`: the first unusable input raises `ImageInputError` (before any generation);
        `errors="return"`: unusable inputs get a result with ``error`` set and ``answer=None``, the rest are
        classified.
        """
        if errors not in ("raise", "return"):
            raise ValueError("errors must be 'raise' or 'return'")
        loaded, failures = self.load_inputs(images)
        if errors == "raise":
            for failure in failures:
                if failure is not None:
                    raise ImageInputError(failure.error)
        good = [i for i, image in enumerate(loaded) if image is not None]
        generations = self.backend.generate([loaded[i] for i in good], batch_size) if good else []
        results: list[ClassifyResult | None] = list(failures)
        for index, generation in zip(good, generations):
            parsed = parse_answer(generation.text, self.ontology, resolver=self.resolver)
            results[index] = ClassifyResult.from_parsed(source_name(images[index], index), parsed, generation)
        return results  # type: ignore[return-value]

    def generate_raw(self, images: Sequence, batch_size: int = 8) -> list[str]:
        """The backend's text for each (already loaded, RGB) image, in order; the forced prefix included."""
        return [generation.text for generation in self.backend.generate(images, batch_size)]

    def describe(self) -> dict:
        """Settings worth recording in metadata."""
        return {**self.backend.describe(), "ontology_version": self.ontology.version}

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
