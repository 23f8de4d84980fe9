"""Logical compatibility of labels: upstream's rule, implication closure first, then contradiction.

Two labels are incompatible when anything the first implies (or the first itself) contradicts anything the second
implies (or the second itself). A contradiction is a conflict between the two concepts whichever of them the
release states it on, so both directions are checked. One label whose own implications contradict each other can
never be part of a consistent answer either; it is reported paired with itself.

Plain functions over the two relations (name -> targets), so that the model and its tests share one implementation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Relation = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Incompatibility:
    """Why two labels cannot apply together: the implication chains from each to the pair that contradicts."""

    first: str
    second: str
    first_chain: tuple[str, ...]  # first, ..., the concept of the contradiction on its side (via implies)
    second_chain: tuple[str, ...]
    contradiction: tuple[str, str]  # (subject, object) as the release states it

    @property
    def reason(self) -> str:
        steps = [_implication(chain) for chain in (self.first_chain, self.second_chain) if len(chain) > 1]
        subject, target = self.contradiction
        steps.append(f"'{subject}' contradicts '{target}'")
        return "; ".join(steps)


def _implication(chain: tuple[str, ...]) -> str:
    via = f" (via {', '.join(repr(name) for name in chain[1:-1])})" if len(chain) > 2 else ""
    return f"'{chain[0]}' implies '{chain[-1]}'{via}"


def implication_chains(start: str, implies: Relation) -> dict[str, tuple[str, ...]]:
    """Everything `start` implies, itself included, each with its shortest chain of implications (nearest first)."""
    chains = {start: (start,)}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for target in sorted(implies.get(current, ())):
            if target not in chains:
                chains[target] = (*chains[current], target)
                queue.append(target)
    return chains


def find_incompatibility(first: str, second: str, implies: Relation, contradicts: Relation) -> Incompatibility | None:
    """The shortest reason `first` and `second` cannot apply together, or None when they can."""
    first_chains = implication_chains(first, implies)
    second_chains = first_chains if second == first else implication_chains(second, implies)
    found: list[tuple[int, str, str, Incompatibility]] = []
    for near, far, near_chains, far_chains, near_is_first in (
        (first, second, first_chains, second_chains, True),
        (second, first, second_chains, first_chains, False),
    ):
        for subject, subject_chain in near_chains.items():
            for target in contradicts.get(subject, ()):
                if target not in far_chains:
                    continue
                chains = (subject_chain, far_chains[target]) if near_is_first else (far_chains[target], subject_chain)
                reason = Incompatibility(first, second, chains[0], chains[1], (subject, target))
                found.append((len(chains[0]) + len(chains[1]), subject, target, reason))
        if near == far:
            break
    return min(found, key=lambda item: item[:3])[3] if found else None


def incompatible_pairs(labels: Iterable[str], implies: Relation, contradicts: Relation) -> list[Incompatibility]:
    """Every pair of `labels` that cannot apply together (a label alone when its implications contradict)."""
    unique = sorted(set(labels))
    pairs = []
    for index, first in enumerate(unique):
        for second in unique[index:]:
            found = find_incompatibility(first, second, implies, contradicts)
            if found is not None:
                pairs.append(found)
    return pairs


def incompatible_partners(name: str, implies: Relation, contradicts: Relation) -> tuple[str, ...]:
    """Every other concept that can never apply together with `name`, sorted."""
    implied_by: dict[str, set[str]] = {}
    for source, targets in implies.items():
        for target in targets:
            implied_by.setdefault(target, set()).add(source)
    conflicting: dict[str, set[str]] = {}
    for source, targets in contradicts.items():
        for target in targets:
            conflicting.setdefault(source, set()).add(target)
            conflicting.setdefault(target, set()).add(source)
    opposed = {target for implied in implication_chains(name, implies) for target in conflicting.get(implied, ())}
    # Whatever implies an opposed concept is opposed too.
    partners = set()
    for target in opposed:
        partners.update(implication_chains(target, implied_by))
    return tuple(sorted(partners - {name}))


__all__ = ["Incompatibility", "find_incompatibility", "implication_chains", "incompatible_pairs", "incompatible_partners"]
