"""Label resolution: a model's label -> a concept name of the bound ontology, or None.

Exact names first, then IRIs of any release namespace, then case and separators (``"integer addition"`` ->
``IntegerAddition``) and, optionally, one unambiguous close match (difflib, high cutoff, digits must agree:
``NumbersSmaller10`` never becomes ``NumbersSmaller100``).
"""

from __future__ import annotations

import difflib
import re

from edugraph_pipeline.ontology.model import Ontology, concept_name

DEFAULT_FUZZY_CUTOFF = 0.9
_NON_ALNUM = re.compile(r"[^0-9a-z]")
_DIGITS = re.compile(r"\d+")


def comparison_key(text: str) -> str:
    """Case- and separator-insensitive comparison key: ``"Integer addition"`` -> ``integeraddition``."""
    return _NON_ALNUM.sub("", text.lower())


class LabelResolver:
    """Maps model labels to ontology concept names (exact, IRI, case/separators, unambiguous close match)."""

    def __init__(self, ontology: Ontology | None, fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF):
        self.ontology = ontology
        self.fuzzy_cutoff = fuzzy_cutoff
        self._by_key: dict[str, str] = {}
        if ontology is not None:
            for name in ontology.concepts:
                self._by_key.setdefault(comparison_key(name), name)
        # A close match is only ever an eligible label: a near-miss is not turned into an organizational one.
        self._keys = [key for key, name in self._by_key.items() if ontology is None or ontology.is_eligible(name)]
        self._cache: dict[str, str | None] = {}

    def dimension(self, name: str) -> str | None:
        if self.ontology is None:
            return None
        return self.ontology.concepts[name].dimension

    def resolve(self, label: str) -> str | None:
        if label not in self._cache:
            self._cache[label] = self._resolve(label)
        return self._cache[label]

    def _resolve(self, label: str) -> str | None:
        name = concept_name(label)
        for prefix in ("edu:", "edu#", "edu/"):
            if name.lower().startswith(prefix):
                name = name[len(prefix) :]
        name = name.strip().strip("<>").strip()
        if self.ontology is None:
            return name or None
        if name in self.ontology.concepts:
            return name
        key = comparison_key(name)
        if not key:
            return None
        if key in self._by_key:
            return self._by_key[key]
        if self.fuzzy_cutoff is None:
            return None
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(key)
        scored = []
        for other in self._keys:
            if abs(len(other) - len(key)) > max(2, len(key) // 4):
                continue
            matcher.set_seq1(other)
            floor = self.fuzzy_cutoff - 0.02  # keep near-misses to detect ambiguity
            if matcher.real_quick_ratio() >= floor and matcher.quick_ratio() >= floor:
                scored.append((matcher.ratio(), other))
        scored.sort(reverse=True)
        if not scored or scored[0][0] < self.fuzzy_cutoff:
            return None
        best_ratio, best = scored[0]
        if len(scored) > 1 and scored[1][0] >= best_ratio - 0.02:
            return None  # ambiguous
        if _DIGITS.findall(best) != _DIGITS.findall(key):
            return None  # numbers carry meaning (NumbersSmaller10 vs NumbersSmaller100)
        return self._by_key[best]
