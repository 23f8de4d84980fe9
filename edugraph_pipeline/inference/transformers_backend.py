"""The merged model (a transformers Qwen3-VL folder) as a backend.

Generation is batched: left padding, images of similar size batched together, so greedy output does not depend
on the batch (the classifier tests compare batched with one-by-one answers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from edugraph_pipeline.inference.backend import AnswerSpec, Generation, ModelFolderError
from edugraph_pipeline.inference.constraint import AnswerVocabulary, JsonObjectTracker


class JsonObjectEnd:
    """Stopping criterion: a row is done once the JSON object its answer opened (the prefix included) closes."""

    def __init__(self, tokenizer, batch_size: int, prefix: str):
        import torch

        self.tokenizer = tokenizer
        self._texts: dict[int, str] = {}  # token id -> its text: decoding is the per-step cost
        self.rows = [JsonObjectTracker(prefix) for _ in range(batch_size)]
        self.done = torch.zeros(batch_size, dtype=torch.bool)
        self.steps = 0
        self.closed_after: list[int | None] = [None] * batch_size  # generated tokens when the row's object closed

    def __call__(self, input_ids, scores, **kwargs):
        self.steps += 1
        for row, tracker in enumerate(self.rows):
            if tracker.done:
                continue
            token = int(input_ids[row, -1])
            if token not in self._texts:
                self._texts[token] = self.tokenizer.decode([token], skip_special_tokens=True)
            self.done[row] = tracker.feed(self._texts[token])
            if tracker.done:
                self.closed_after[row] = self.steps
        return self.done.to(input_ids.device).clone()


def vocabulary_mask(vocabulary: AnswerVocabulary, vocab_size: int, device):
    """A logits processor adding 0 to the allowed ids and -inf to every other."""
    import torch
    from transformers import LogitsProcessor

    mask = torch.full((vocab_size,), float("-inf"), device=device)
    mask[torch.tensor(vocabulary.within(vocab_size), device=device)] = 0.0

    class _Mask(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return scores + mask[: scores.shape[-1]].to(scores.dtype)

    return _Mask()


def pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TransformersBackend:
    """A loaded model + processor generating under an `AnswerSpec`."""

    kind = "transformers"

    def __init__(self, model, processor, spec: AnswerSpec, folder: str | os.PathLike | None = None):
        self.model = model
        self.processor = processor
        self.spec = spec
        self.folder = Path(folder) if folder is not None else None
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.prompt = processor.apply_chat_template(
            list(spec.messages), add_generation_prompt=True, tokenize=False
        ) + spec.prefix
        self.eos_ids = self._eos_ids()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.vocabulary = (
            AnswerVocabulary(self.tokenizer, spec.answer_texts, self.eos_ids) if spec.answer_texts is not None else None
        )

    @property
    def max_new_tokens(self) -> int:
        return self.spec.max_new_tokens

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

    @staticmethod
    def check_folder(folder: Path) -> None:
        if not (folder / "config.json").is_file():
            raise ModelFolderError(f"{folder}: no config.json, not a saved model folder")

    @classmethod
    def from_folder(
        cls, folder: Path, spec: AnswerSpec, *, device: str | None = None, dtype=None
    ) -> TransformersBackend:
        """Load a saved model folder offline (local files only). `device`: default cuda when available, else
        cpu; `dtype`: default bfloat16 on cuda, float32 on cpu."""
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = pick_device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelFolderError(f"{folder}: cannot load the model ({error})") from error
        model.to(device)
        model.eval()
        return cls(model, processor, spec, folder)

    def _finished(self, tokens: list[int], closed_after: int | None) -> tuple[int, str]:
        """(generated tokens, finish reason) of one row: rows that ended early are padded after their end."""
        if closed_after is not None:
            return closed_after, "stop"
        for index, token in enumerate(tokens):
            if token in self.eos_ids:
                return index + 1, "stop"
        return len(tokens), "length"

    def generate(self, images: Sequence, batch_size: int = 8) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        order = sorted(range(len(images)), key=lambda i: images[i].width * images[i].height)
        generations: list[Generation | None] = [None] * len(images)
        device = self.model.device
        vocab_size = self.model.get_output_embeddings().weight.shape[0]
        logits_processor = LogitsProcessorList()
        if self.vocabulary is not None:
            logits_processor.append(vocabulary_mask(self.vocabulary, vocab_size, device))
        prefix = self.spec.prefix
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = [images[i] for i in chunk]
            inputs = self.processor(
                text=[self.prompt] * len(batch), images=batch, padding=True, return_tensors="pt"
            ).to(device)
            stop = JsonObjectEnd(self.tokenizer, len(batch), prefix)
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs,
                    max_new_tokens=self.spec.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    logits_processor=logits_processor,
                    stopping_criteria=StoppingCriteriaList([stop]),
                    eos_token_id=self.eos_ids,
                    pad_token_id=self.pad_id,
                )
            new = output[:, inputs["input_ids"].shape[1] :]
            prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
            for row, index in enumerate(chunk):
                count, finish = self._finished(new[row].tolist(), stop.closed_after[row])
                generations[index] = Generation(
                    text=prefix + self.tokenizer.decode(new[row][:count], skip_special_tokens=True),
                    prompt_tokens=int(prompt_lengths[row]), completion_tokens=count, finish_reason=finish,
                )
        return generations  # type: ignore[return-value]

    def describe(self) -> dict:
        return {
            "backend": self.kind,
            "max_new_tokens": self.spec.max_new_tokens,
            "constrain": self.vocabulary is not None,
            "prefix": self.spec.prefix,
            "vocabulary_tokens": len(self.vocabulary.ids) if self.vocabulary else None,
            "device": str(self.model.device),
        }

    def close(self) -> None:
        """Nothing to free explicitly: torch releases the weights with the last reference."""
