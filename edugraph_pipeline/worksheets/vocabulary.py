"""Which ontology concepts a generated worksheet kind is labelled with, in every release that has them.

Concept names changed between releases (`IntegerAddition` until v0.5.0, `Addition` from v0.6.0; `Smaller10` in
v0.1.x, `NumbersSmaller10` later; v0.1.0 even spells `IntegerAdditon`), so each label is a *slot* listing the
names that meant the same thing, newest first. The first name the bound release knows wins. A kind whose
required slot resolves to nothing cannot be labelled truthfully against that release and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edugraph_pipeline.ontology.model import Ontology


@dataclass(frozen=True)
class Slot:
    alternatives: tuple[str, ...]
    required: bool = True

    def resolve(self, ontology: Ontology) -> str | None:
        for name in self.alternatives:
            if name in ontology:
                return name
        return None


class MissingConcepts(LookupError):
    """A required label slot has no concept in the bound ontology release."""


def required(*names: str) -> Slot:
    return Slot(tuple(names), required=True)


def optional(*names: str) -> Slot:
    return Slot(tuple(names), required=False)


# Upper bounds of the "numbers smaller than N" scopes, and their names over time.
NUMBER_LIMITS: tuple[int, ...] = (10, 20, 100, 1000)


def number_range_slot(limit: int) -> Slot:
    return required(f"NumbersSmaller{limit}", f"Smaller{limit}")


def number_limit_for(largest: int) -> int:
    """The tightest `NumbersSmallerN` scope containing every number up to `largest`."""
    for limit in NUMBER_LIMITS:
        if largest < limit:
            return limit
    raise ValueError(f"{largest} is beyond the largest number scope NumbersSmaller{NUMBER_LIMITS[-1]}")


def missing_required(slots: Iterable[Slot], ontology: Ontology) -> list[Slot]:
    return [slot for slot in slots if slot.required and slot.resolve(ontology) is None]


def resolve_slots(slots: Iterable[Slot], ontology: Ontology, kind: str) -> tuple[str, ...]:
    """The concept names of every slot the release knows; raises when a required one is missing."""
    names: list[str] = []
    for slot in slots:
        name = slot.resolve(ontology)
        if name is None:
            if slot.required:
                raise MissingConcepts(
                    f"kind {kind!r} needs one of {list(slot.alternatives)}, "
                    f"but ontology release {ontology.version} has none of them"
                )
            continue
        if name not in names:
            names.append(name)
    return tuple(names)
