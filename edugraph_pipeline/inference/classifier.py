"""The merged model as a worksheet classifier: images in, valid upstream answers out.

Generation is greedy, batched (left padding, images of similar size batched together) and bounded
(`max_new_tokens`). Three cheap measures make malformed output the exception, and `answers.parse_answer`
repairs and normalises whatever still comes out:

* the answer is started with the forced prefix ``{"`` (appended to the generation prompt; it is exactly the
  first token of every training answer, so the prompt tokens are those the model was trained on);
* a static vocabulary mask (`AnswerVocabulary`): only tokens that occur in the tokenisation of some valid answer
  of the bound ontology (structure, every concept name, the refusal) and the end-of-turn tokens may be
  generated: no prose, no other scripts, no code fences;
* generation of a row stops as soon as its JSON object is closed (`JsonObjectEnd`), even without end-of-turn.

A full grammar (token trie over concept names) was left out: the mask costs one tensor add per step, the trie
would need per-step Python work per row, and repair already recovers structure and drops unknown names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edugraph_pipeline.inference.answers import DEFAULT_FUZZY_CUTOFF, LabelResolver, ParsedAnswer, parse_answer
from edugraph_pipeline.labels import format_answer, format_unsupported
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology
from edugraph_pipeline.prompts import classification_messages

ONTOLOGY_FILE = "ontology.json"
ANSWER_PREFIX = '{"'
DEFAULT_MAX_NEW_TOKENS = 192
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


class ImageInputError(ValueError):
    """An input that is not a usable image; the message starts with the file's name."""


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded (missing, incomplete, no bound ontology)."""


def load_image(source: Any, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS):
    """An RGB `PIL.Image` from a path or an image; `ImageInputError` naming the file for anything unusable."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise ImageInputError(f"<image>: {source.width}x{source.height} exceeds the {max_pixels} pixel cap")
        if source.width < 1 or source.height < 1:
            raise ImageInputError("<image>: empty image")
        return source if source.mode == "RGB" else source.convert("RGB")
    if not isinstance(source, (str, os.PathLike)):
        raise ImageInputError(f"{source!r}: not an image path or PIL image")
    path = Path(source)
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if not path.is_file():
        raise ImageInputError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise ImageInputError(f"{path}: empty file")
    if size > max_bytes:
        raise ImageInputError(f"{path}: {size} bytes exceeds the {max_bytes} byte limit")
    try:
        with Image.open(path) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise ImageInputError(f"{path}: {width}x{height} exceeds the {max_pixels} pixel cap")
            probe.verify()
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except ImageInputError:
        raise
    except PermissionError as error:
        raise ImageInputError(f"{path}: cannot be read ({error.strerror or error})") from error
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ImageInputError(f"{path}: not a readable image ({error.__class__.__name__})") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageInputError(f"{path}: damaged or unreadable image ({error})") from error


def source_name(source: Any, index: int) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"<image {index}>"


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
    error: str | None = None

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
    def from_parsed(cls, source: str, parsed: ParsedAnswer) -> ClassifyResult:
        return cls(
            source=source,
            answer=parsed.answer,
            raw=parsed.raw,
            parsed_ok=parsed.parsed_ok,
            repaired=parsed.repaired,
            unknown=list(parsed.unknown),
            remapped=dict(parsed.remapped),
            moved=dict(parsed.moved),
        )

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# Constrained generation
# ---------------------------------------------------------------------------------------------------------------


def answer_texts(ontology: Ontology) -> list[str]:
    """Valid answers that together show every concept name in every context it can take in an answer."""
    texts = [format_unsupported(), format_answer({})]
    for dimension in DIMENSIONS:
        names = [c.name for c in ontology.by_dimension(dimension)]
        if names:
            texts.append(format_answer({dimension: names}))  # each name after '", "' and before '", "' / '"]'
        texts.extend(format_answer({dimension: [name]}) for name in names)  # first and last in its list
    return texts


class AnswerVocabulary:
    """The token ids any valid answer of `ontology` is made of, plus end-of-turn ids: a logits mask."""

    def __init__(self, tokenizer, ontology: Ontology, extra_ids: Sequence[int] = ()):
        ids: set[int] = set(int(i) for i in extra_ids)
        for text in answer_texts(ontology):
            ids.update(tokenizer.encode(text, add_special_tokens=False))
        self.ids = sorted(ids)

    def processor(self, vocab_size: int, device):
        import torch
        from transformers import LogitsProcessor

        mask = torch.full((vocab_size,), float("-inf"), device=device)
        mask[torch.tensor([i for i in self.ids if i < vocab_size], device=device)] = 0.0

        class _Mask(LogitsProcessor):
            def __call__(self, input_ids, scores):
                return scores + mask[: scores.shape[-1]].to(scores.dtype)

        return _Mask()


class JsonObjectEnd:
    """Stopping criterion: a row is done once the JSON object its answer opened (the prefix included) closes."""

    def __init__(self, tokenizer, batch_size: int, prefix: str):
        import torch

        self.tokenizer = tokenizer
        self._texts: dict[int, str] = {}
        self.depth = [0] * batch_size
        self.in_string = [False] * batch_size
        self.escape = [False] * batch_size
        self.done = torch.zeros(batch_size, dtype=torch.bool)
        for row in range(batch_size):
            self._feed(row, prefix)

    def _feed(self, row: int, text: str) -> None:
        for char in text:
            if self.in_string[row]:
                if self.escape[row]:
                    self.escape[row] = False
                elif char == "\\":
                    self.escape[row] = True
                elif char == '"':
                    self.in_string[row] = False
            elif char == '"':
                self.in_string[row] = True
            elif char in "{[":
                self.depth[row] += 1
            elif char in "}]":
                self.depth[row] -= 1
                if self.depth[row] <= 0:
                    self.done[row] = True
                    return

    def __call__(self, input_ids, scores, **kwargs):
        for row in range(input_ids.shape[0]):
            if self.done[row]:
                continue
            token = int(input_ids[row, -1])
            if token not in self._texts:
                self._texts[token] = self.tokenizer.decode([token], skip_special_tokens=True)
            self._feed(row, self._texts[token])
        return self.done.to(input_ids.device).clone()


def _pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_inputs(images: Sequence, max_file_bytes: int, max_pixels: int) -> tuple[list, list[ClassifyResult | None]]:
    """Loaded images (None where unusable) and, per input, an error result or None."""
    loaded, errors = [], []
    for index, source in enumerate(images):
        name = source_name(source, index)
        try:
            loaded.append(load_image(source, max_file_bytes, max_pixels))
            errors.append(None)
        except ImageInputError as error:
            message = str(error)
            if message.startswith("<image>"):
                message = name + message[len("<image>") :]
            loaded.append(None)
            errors.append(ClassifyResult(source=name, answer=None, error=message))
    return loaded, errors


def classify_inputs(backend, images: Sequence, batch_size: int, errors: str) -> list[ClassifyResult]:
    """Load, generate and parse with any backend (transformers or llama.cpp) that has `generate_raw`.

    `errors="raise"`: the first unusable input raises `ImageInputError` (before any generation);
    `errors="return"`: unusable inputs get a result with ``error`` set and ``answer=None``, the rest are
    classified.
    """
    if errors not in ("raise", "return"):
        raise ValueError("errors must be 'raise' or 'return'")
    loaded, failures = load_inputs(images, backend.max_file_bytes, backend.max_pixels)
    if errors == "raise":
        for failure in failures:
            if failure is not None:
                raise ImageInputError(failure.error)
    good = [i for i, image in enumerate(loaded) if image is not None]
    raw = backend.generate_raw([loaded[i] for i in good], batch_size) if good else []
    results: list[ClassifyResult | None] = list(failures)
    for index, text in zip(good, raw):
        parsed = parse_answer(text, backend.ontology, resolver=backend.resolver)
        results[index] = ClassifyResult.from_parsed(source_name(images[index], index), parsed)
    return results  # type: ignore[return-value]


class Classifier:
    """A loaded model + processor + bound ontology. `classify` is the whole inference path."""

    def __init__(
        self,
        model,
        processor,
        ontology: Ontology,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        constrain: bool = True,
        prefix: str = ANSWER_PREFIX,
        fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF,
        max_file_bytes: int = MAX_FILE_BYTES,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ):
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.ontology = ontology
        self.max_new_tokens = max_new_tokens
        self.constrain = constrain
        self.prefix = prefix
        self.max_file_bytes = max_file_bytes
        self.max_pixels = max_pixels
        self.resolver = LabelResolver(ontology, fuzzy_cutoff)
        self.prompt = processor.apply_chat_template(
            classification_messages(), add_generation_prompt=True, tokenize=False
        ) + prefix
        self.eos_ids = self._eos_ids()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.vocabulary = AnswerVocabulary(self.tokenizer, ontology, self.eos_ids) if constrain else None

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(configured, int):
            ids.append(configured)
        elif configured:
            ids.extend(int(i) for i in configured)
        for token in ("<|im_end|>", "<|endoftext|>"):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id >= 0 and token_id != self.tokenizer.unk_token_id:
                ids.append(token_id)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        if not ids:
            raise ModelFolderError("the model and tokenizer define no end-of-sequence token")
        return list(dict.fromkeys(ids))

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        ontology_path: str | os.PathLike | None = None,
        *,
        device: str | None = None,
        dtype=None,
        **kwargs,
    ) -> Classifier:
        """Load a merged model folder (offline, local files only) and its bound ``ontology.json``.

        `ontology_path` overrides the folder's ontology. `device`: default cuda when available, else cpu;
        `dtype`: default bfloat16 on cuda, float32 on cpu. Other keyword arguments go to `Classifier`.
        """
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFolderError(f"{folder}: model folder does not exist")
        if not (folder / "config.json").is_file():
            raise ModelFolderError(f"{folder}: no config.json, not a saved model folder")
        ontology_file = Path(ontology_path) if ontology_path is not None else folder / ONTOLOGY_FILE
        if not ontology_file.is_file():
            raise ModelFolderError(
                f"{ontology_file}: no bound ontology (the merged model folder should hold {ONTOLOGY_FILE}; "
                "pass an ontology file explicitly)"
            )
        try:
            ontology = Ontology.load(ontology_file)
        except ValueError as error:
            raise ModelFolderError(str(error)) from error
        device = _pick_device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelFolderError(f"{folder}: cannot load the model ({error})") from error
        model.to(device)
        model.eval()
        return cls(model, processor, ontology, **kwargs)

    # ---- generation -------------------------------------------------------------------------------------------

    def generate_raw(self, images: Sequence, batch_size: int = 8) -> list[str]:
        """The model's text for each (already loaded, RGB) image, in order; the forced prefix included."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        order = sorted(range(len(images)), key=lambda i: images[i].width * images[i].height)
        texts: list[str] = [""] * len(images)
        device = self.model.device
        vocab_size = self.model.get_output_embeddings().weight.shape[0]
        logits_processor = LogitsProcessorList()
        if self.vocabulary is not None:
            logits_processor.append(self.vocabulary.processor(vocab_size, device))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = [images[i] for i in chunk]
            inputs = self.processor(
                text=[self.prompt] * len(batch), images=batch, padding=True, return_tensors="pt"
            ).to(device)
            stop = JsonObjectEnd(self.tokenizer, len(batch), self.prefix)
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    logits_processor=logits_processor,
                    stopping_criteria=StoppingCriteriaList([stop]),
                    eos_token_id=self.eos_ids,
                    pad_token_id=self.pad_id,
                )
            new = output[:, inputs["input_ids"].shape[1] :]
            for row, index in enumerate(chunk):
                texts[index] = self.prefix + self.tokenizer.decode(new[row], skip_special_tokens=True)
        return texts

    def classify(self, images: Sequence, batch_size: int = 8, errors: str = "raise") -> list[ClassifyResult]:
        """One result per input (PIL images or paths), in order (see `classify_inputs`)."""
        return classify_inputs(self, images, batch_size, errors)

    def describe(self) -> dict:
        """Settings worth recording in metadata."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "constrain": self.constrain,
            "prefix": self.prefix,
            "vocabulary_tokens": len(self.vocabulary.ids) if self.vocabulary else None,
            "ontology_version": self.ontology.version,
            "device": str(self.model.device),
        }


def answer_json(result: ClassifyResult, include_raw: bool = False) -> str:
    """One output line: the upstream answer object (with ``"raw"`` added when asked)."""
    data = dict(result.answer or {})
    if include_raw:
        data["raw"] = result.raw
    return json.dumps(data, ensure_ascii=False)
