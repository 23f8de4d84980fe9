"""The normalised EduGraph ontology: one model for every release format.

Releases name the same thing differently (``edu#Name`` vs ``edu/Name`` individuals, ``partOfArea`` vs
``partOf``, ``expandsArea`` vs ``expands``). Everything downstream sees only this model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

DIMENSIONS: tuple[str, ...] = ("Area", "Scope", "Ability")
EDU_NAMESPACES: tuple[str, ...] = ("http://edugraph.io/edu#", "http://edugraph.io/edu/")


def concept_name(label: str) -> str:
    """The bare concept name of a label given as a name, an ``edu#`` IRI or an ``edu/`` IRI."""
    label = label.strip()
    for namespace in EDU_NAMESPACES:
        if label.startswith(namespace):
            return label[len(namespace) :]
    return label


@dataclass(frozen=True)
class Concept:
    name: str
    iri: str
    dimension: str
    definition: str = ""
    parents: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    # Other relations by their normalised predicate name ("expands", "translates", ...): targets.
    relations: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Ontology:
    version: str
    commit: str
    concepts: dict[str, Concept]
    source_files: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Concept]:
        return iter(self.concepts[name] for name in sorted(self.concepts))

    def __len__(self) -> int:
        return len(self.concepts)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.concepts

    def resolve(self, label: str) -> Concept | None:
        """The concept a label (name or IRI of any release's namespace) refers to, if it exists here."""
        return self.concepts.get(concept_name(label))

    def by_dimension(self, dimension: str) -> list[Concept]:
        return [concept for concept in self if concept.dimension == dimension]

    def counts(self) -> dict[str, int]:
        return {dimension: len(self.by_dimension(dimension)) for dimension in DIMENSIONS}

    def has_hierarchy(self) -> bool:
        return any(concept.parents for concept in self.concepts.values())

    def ancestors(self, name: str) -> list[str]:
        """All transitive parents, nearest first, each once (the hierarchy may be a DAG)."""
        seen: list[str] = []
        frontier = list(self.concepts[name].parents)
        while frontier:
            parent = frontier.pop(0)
            if parent in seen or parent == name:
                continue
            seen.append(parent)
            frontier.extend(self.concepts[parent].parents)
        return seen

    def group_by_dimension(self, names: Iterable[str]) -> dict[str, list[str]]:
        """Names sorted into the upstream answer shape ``{"Area": [...], "Scope": [...], "Ability": [...]}``."""
        grouped: dict[str, list[str]] = {dimension: [] for dimension in DIMENSIONS}
        for name in names:
            concept = self.concepts[name]
            if concept.name not in grouped[concept.dimension]:
                grouped[concept.dimension].append(concept.name)
        return {dimension: sorted(values) for dimension, values in grouped.items()}

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "commit": self.commit,
            "source_files": list(self.source_files),
            "concepts": [asdict(concept) for concept in self],
        }

    @classmethod
    def from_json(cls, data: dict) -> Ontology:
        concepts = {}
        for raw in data["concepts"]:
            concept = Concept(
                name=raw["name"],
                iri=raw["iri"],
                dimension=raw["dimension"],
                definition=raw.get("definition", ""),
                parents=tuple(raw.get("parents", ())),
                children=tuple(raw.get("children", ())),
                relations={key: tuple(value) for key, value in raw.get("relations", {}).items()},
            )
            concepts[concept.name] = concept
        return cls(
            version=data["version"],
            commit=data["commit"],
            concepts=concepts,
            source_files=tuple(data.get("source_files", ())),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Ontology:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: not a normalised ontology file ({error})") from error
