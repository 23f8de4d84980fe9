"""What keeps a backend's output an answer: the forced prefix, the answer vocabulary and the stop rule.

Generation is greedy and bounded (`AnswerSpec.max_new_tokens`). Three cheap measures make malformed output the
exception, and `answers.parse_answer` repairs and normalises whatever still comes out:

* the answer is started with the forced prefix ``{"`` (appended to the generation prompt; it is exactly the
  first token of every training answer, so the prompt tokens are those the model was trained on);
* a static vocabulary mask (`AnswerVocabulary`): only tokens that occur in the tokenisation of some valid answer
  of the bound ontology (structure, every eligible label, the refusal) and the end-of-turn tokens may be
  generated: no prose, no other scripts, no code fences;
* generation of an answer stops as soon as its JSON object is closed (`JsonObjectTracker`), even without
  end-of-turn.

A full grammar (token trie over concept names) was left out: the mask costs one tensor add per step, the trie
would need per-step Python work per row, and repair already recovers structure and drops unknown names.
Each backend applies these in its own terms (a logits processor, a numpy mask); the rules are stated here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from edugraph_pipeline.labels import format_answer, format_unsupported
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology

ANSWER_PREFIX = '{"'


def answer_labels(ontology: Ontology, dimension: str) -> list[str]:
    """The names an answer may list under `dimension`, sorted: the bound release's eligible labels of that
    dimension (organizational descriptors excluded; all of a release without composition apart from
    specialization). The one vocabulary of decoding, repair and closed response schemas."""
    return ontology.eligible_labels(dimension)


def answer_texts(ontology: Ontology) -> list[str]:
    """Valid answers that together show every answer label in every context it can take in an answer."""
    texts = [format_unsupported(), format_answer({})]
    for dimension in DIMENSIONS:
        names = answer_labels(ontology, dimension)
        if names:
            texts.append(format_answer({dimension: names}))  # each name after '", "' and before '", "' / '"]'
        texts.extend(format_answer({dimension: [name]}) for name in names)  # first and last in its list
    return texts


class Encoder(Protocol):
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]: ...


class AnswerVocabulary:
    """The token ids the texts of `answer_texts` are made of, plus end-of-turn ids: what a mask lets through."""

    def __init__(self, tokenizer: Encoder, texts: Iterable[str], extra_ids: Sequence[int] = ()):
        ids: set[int] = set(int(i) for i in extra_ids)
        for text in texts:
            ids.update(tokenizer.encode(text, add_special_tokens=False))
        self.ids = sorted(ids)

    def within(self, vocab_size: int) -> list[int]:
        """The allowed ids a model of `vocab_size` logits has (a tokenizer may know more ids than the head)."""
        return [i for i in self.ids if i < vocab_size]


class JsonObjectTracker:
    """Depth of the answer's JSON object (the prefix included), string-aware: `done` once it closes."""

    def __init__(self, prefix: str = ANSWER_PREFIX):
        self.depth, self.in_string, self.escape, self.done = 0, False, False, False
        self.feed(prefix)

    def feed(self, text: str) -> bool:
        """Take the next decoded text; whether the object is closed now."""
        for char in text:
            if self.done:
                break
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
        return self.done
