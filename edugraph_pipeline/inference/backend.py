"""What a backend is: a loaded model that answers the classification prompt for prepared images.

A backend (`TransformersBackend`, `LlamaCppBackend`) knows its model folder's format and its runtime; it gets an
`AnswerSpec` (the prompt, the forced prefix, the answer vocabulary, the bound) and returns the raw text of each
answer. It knows nothing of ontologies, repair, results or where artifacts live: `Classifier` loads the bound
ontology, checks the inputs and parses the answers; the CLIs find the default model folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from edugraph_pipeline.inference.constraint import ANSWER_PREFIX

DEFAULT_MAX_NEW_TOKENS = 192


class ModelFolderError(ValueError):
    """A model folder that cannot be loaded (missing, incomplete, no bound ontology, runtime absent)."""


@dataclass(frozen=True)
class AnswerSpec:
    """What every backend generates: greedily, `messages` rendered by the model's own chat template with a
    generation prompt, then `prefix`, then at most `max_new_tokens` tokens taken only from the tokens of
    `answer_texts` and end-of-turn (None: unconstrained), stopping once the JSON object closes."""

    messages: tuple[dict, ...]
    prefix: str = ANSWER_PREFIX
    answer_texts: tuple[str, ...] | None = None
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


@dataclass(frozen=True)
class Generation:
    """One answer as a backend generated it: the text (forced prefix included) and what it cost."""

    text: str
    prompt_tokens: int  # the rendered prompt, image tokens and forced prefix included
    completion_tokens: int  # generated tokens, the end-of-turn token included when one ended the answer
    finish_reason: str  # "stop": the answer ended (object closed, end of turn); "length": it hit max_new_tokens


class Backend(Protocol):
    kind: ClassVar[str]  # what `--backend` names and the service reports: "transformers", "gguf"
    folder: Path | None  # the model folder it was loaded from (what a revision is the hash of)
    spec: AnswerSpec

    @staticmethod
    def check_folder(folder: Path) -> None:
        """`ModelFolderError` unless `folder` (an existing folder) is in this backend's format."""

    @classmethod
    def from_folder(cls, folder: Path, spec: AnswerSpec, **options: Any) -> Backend:
        """Load the model of a folder that passed `check_folder`."""

    def generate(self, images: Sequence, batch_size: int) -> list[Generation]:
        """Each (loaded, RGB) image's answer, in order."""

    def describe(self) -> dict:
        """What it is and how it generates (kind, files, device/threads, bound): for logs and metadata."""

    def close(self) -> None:
        """Free the runtime's memory now (idempotent)."""
