"""The normalised EduGraph ontology: one model for every release format and both readings of its hierarchy.

Releases name the same thing differently (``edu#Name`` vs ``edu/Name`` individuals, ``partOfArea`` vs ``partOf``,
``expandedBy`` vs ``expands``), and from v0.22 on upstream splits the hierarchy in two: ``specializes`` is the
taxonomy, ``partOf`` composition only. Everything downstream sees only this model; ``ontology.json`` (written by
`ontology_release`, shipped in every model folder) is its serialised form, with the eligible labels and the logic
relations that validating and decoding labels need.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from edugraph_pipeline.ontology import logic
from edugraph_pipeline.ontology.logic import Incompatibility

DIMENSIONS: tuple[str, ...] = ("Area", "Scope", "Ability")
EDU_NAMESPACES: tuple[str, ...] = ("http://edugraph.io/edu#", "http://edugraph.io/edu/")

# How a release's hierarchy is read (decided by `parsing` from the release's own schema, see `reading_of`):
# up to v0.21.0 `partOf` is the only hierarchy; a release with `specializes` has a taxonomy (specialization) and
# composition (`partOf`) apart, and only there are organizational descriptors ineligible as direct labels.
PART_OF_HIERARCHY = "partOf-hierarchy"
SPECIALIZATION_AND_COMPOSITION = "specialization-and-composition"
READINGS: tuple[str, ...] = (PART_OF_HIERARCHY, SPECIALIZATION_AND_COMPOSITION)

# The normalised relation names (each the forward direction upstream authors), by family.
SPECIALIZES, PART_OF, STRUCTURES = "specializes", "partOf", "structures"
PROGRESSION_RELATIONS: tuple[str, ...] = ("expands", "inverts", "integrates", "translates")
LOGIC_RELATIONS: tuple[str, ...] = ("implies", "contradicts")
RELATION_FAMILIES: dict[str, tuple[str, ...]] = {
    "specialization": (SPECIALIZES,),
    "composition": (PART_OF,),
    "structure": (STRUCTURES,),
    "progression": PROGRESSION_RELATIONS,
    "logic": LOGIC_RELATIONS,
}
KNOWN_RELATIONS: frozenset[str] = frozenset(name for names in RELATION_FAMILIES.values() for name in names)

# 1: written before issue 22 (no reading, eligibility, composition or content hash); 2: this model.
FORMAT = 2


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
    # The taxonomy under the release's reading: specialization parents where the release has `specializes`,
    # `partOf` parents where `partOf` is its only hierarchy (v0.1.0-v0.21.0).
    parents: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    # Progression, logic and any other relation, by normalised forward name: targets, including the facts the
    # release's schema entails (an `inverts` fact is also an `expands` fact; `X impliedBy Y` is `Y implies X`).
    relations: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Composition (`partOf` / `hasPart`) where it is apart from specialization; empty under the partOf-hierarchy reading.
    part_of: tuple[str, ...] = ()
    has_part: tuple[str, ...] = ()
    # `structures` / `structuredBy`, the super-property of specialization and composition where the release has it.
    structures: tuple[str, ...] = ()
    structured_by: tuple[str, ...] = ()
    examples: str = ""  # the rdfs:comment beside the definition, where the release splits the two
    eligible: bool = True  # a valid direct label (an organizational descriptor, one with constituent parts, is not)


@dataclass(frozen=True)
class Ontology:
    version: str
    commit: str
    concepts: dict[str, Concept]
    source_files: tuple[str, ...] = ()
    reading: str = PART_OF_HIERARCHY

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

    def has_composition(self) -> bool:
        """Whether composition is apart from the taxonomy here (and label eligibility therefore applies)."""
        return self.reading == SPECIALIZATION_AND_COMPOSITION

    def ancestors(self, name: str) -> list[str]:
        """All transitive taxonomy parents, nearest first, each once (the hierarchy may be a DAG)."""
        seen: list[str] = []
        frontier = list(self.concepts[name].parents)
        while frontier:
            parent = frontier.pop(0)
            if parent in seen or parent == name:
                continue
            seen.append(parent)
            frontier.extend(self.concepts[parent].parents)
        return seen

    def structural_parents(self, name: str) -> tuple[str, ...]:
        """What `name` sits under in the release's whole structure: `structures` targets where the release has the
        super-property, else its hierarchy parents."""
        concept = self.concepts[name]
        return concept.structures if self.has_composition() else concept.parents

    def group_by_dimension(self, names: Iterable[str]) -> dict[str, list[str]]:
        """Names sorted into the upstream answer shape ``{"Area": [...], "Scope": [...], "Ability": [...]}``."""
        grouped: dict[str, list[str]] = {dimension: [] for dimension in DIMENSIONS}
        for name in names:
            concept = self.concepts[name]
            if concept.name not in grouped[concept.dimension]:
                grouped[concept.dimension].append(concept.name)
        return {dimension: sorted(values) for dimension, values in grouped.items()}

    # -- label eligibility -------------------------------------------------------------------------------------

    def eligible_labels(self, dimension: str | None = None) -> list[str]:
        """The names a label set may contain (of one dimension, or all), sorted."""
        if dimension is not None and dimension not in DIMENSIONS:
            raise ValueError(f"unknown dimension {dimension!r}: one of {', '.join(DIMENSIONS)}")
        return [c.name for c in self if c.eligible and (dimension is None or c.dimension == dimension)]

    def organizational_labels(self) -> list[str]:
        """Concepts that organise others (they have constituent parts) and are no valid direct label, sorted."""
        return [concept.name for concept in self if not concept.eligible]

    def is_eligible(self, label: str) -> bool:
        """Whether `label` (name or IRI) is a concept of this release that may be used as a direct label."""
        concept = self.resolve(label)
        return concept is not None and concept.eligible

    # -- logical compatibility ---------------------------------------------------------------------------------

    @cached_property
    def _implies(self) -> dict[str, tuple[str, ...]]:
        return {c.name: c.relations["implies"] for c in self.concepts.values() if "implies" in c.relations}

    @cached_property
    def _contradicts(self) -> dict[str, tuple[str, ...]]:
        return {c.name: c.relations["contradicts"] for c in self.concepts.values() if "contradicts" in c.relations}

    def _known(self, labels: Iterable[str]) -> list[str]:
        names = [concept_name(label) for label in labels]
        unknown = sorted({name for name in names if name not in self.concepts})
        if unknown:
            raise ValueError(f"not concepts of ontology {self.version}: {', '.join(unknown)}")
        return names

    def implied(self, label: str) -> tuple[str, ...]:
        """Everything `label` implies, directly or through other implications (itself excluded), nearest first."""
        [name] = self._known([label])
        return tuple(logic.implication_chains(name, self._implies))[1:]

    def implication_chain(self, label: str, implied: str) -> tuple[str, ...] | None:
        """The shortest chain of implications from `label` to `implied` (both included), or None."""
        [name, target] = self._known([label, implied])
        return logic.implication_chains(name, self._implies).get(target)

    def incompatible_pairs(self, labels: Iterable[str]) -> list[Incompatibility]:
        """Each pair of `labels` that cannot apply together, with the reason (`Incompatibility.reason`)."""
        return logic.incompatible_pairs(self._known(labels), self._implies, self._contradicts)

    def is_compatible(self, labels: Iterable[str]) -> bool:
        return not self.incompatible_pairs(labels)

    def incompatible_with(self, label: str) -> tuple[str, ...]:
        """Every other concept that can never apply together with `label`, sorted."""
        [name] = self._known([label])
        return logic.incompatible_partners(name, self._implies, self._contradicts)

    # -- figures and serialisation -----------------------------------------------------------------------------

    def relation_counts(self) -> dict[str, int]:
        """Facts per normalised relation (each once, in its forward direction), families first."""
        counts = dict.fromkeys((name for names in RELATION_FAMILIES.values() for name in names), 0)
        others: dict[str, int] = {}
        for concept in self.concepts.values():
            counts[SPECIALIZES if self.has_composition() else PART_OF] += len(concept.parents)
            counts[PART_OF] += len(concept.part_of)
            counts[STRUCTURES] += len(concept.structures)
            for relation, targets in concept.relations.items():
                tally = counts if relation in counts else others
                tally[relation] = tally.get(relation, 0) + len(targets)
        return {**counts, **dict(sorted(others.items()))}

    def _content(self) -> dict:
        return {"format": FORMAT, "reading": self.reading, "concepts": [asdict(concept) for concept in self]}

    def content_sha256(self) -> str:
        """The hash of the normalised content (reading and concepts; not the tag, commit or file names)."""
        canonical = json.dumps(self._content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_json(self) -> dict:
        content = self._content()
        return {
            "format": FORMAT,
            "version": self.version,
            "commit": self.commit,
            "source_files": list(self.source_files),
            "reading": self.reading,
            "content_sha256": self.content_sha256(),
            "concepts": content["concepts"],
        }

    @classmethod
    def from_json(cls, data: dict) -> Ontology:
        file_format = data.get("format", 1)
        if file_format not in (1, FORMAT):
            raise ValueError(f"format {file_format!r} is not one this pipeline reads (1 or {FORMAT}); update it")
        if file_format == 1:
            return _from_format_1(data)
        if data["reading"] not in READINGS:
            raise ValueError(f"reading {data['reading']!r} is not one of {', '.join(READINGS)}")
        ontology = cls(
            version=data["version"],
            commit=data["commit"],
            concepts={raw["name"]: _concept(raw) for raw in data["concepts"]},
            source_files=tuple(data["source_files"]),
            reading=data["reading"],
        )
        if ontology.content_sha256() != data["content_sha256"]:
            raise ValueError(
                f"its concepts do not match its content_sha256 {data['content_sha256']} (edited or damaged); "
                f"materialize ontology_release {ontology.version} again"
            )
        return ontology

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Ontology:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not a normalised ontology file ({error})") from error


def _concept(raw: dict) -> Concept:
    return Concept(
        name=raw["name"],
        iri=raw["iri"],
        dimension=raw["dimension"],
        definition=raw.get("definition", ""),
        parents=tuple(raw.get("parents", ())),
        children=tuple(raw.get("children", ())),
        relations={key: tuple(value) for key, value in raw.get("relations", {}).items()},
        part_of=tuple(raw.get("part_of", ())),
        has_part=tuple(raw.get("has_part", ())),
        structures=tuple(raw.get("structures", ())),
        structured_by=tuple(raw.get("structured_by", ())),
        examples=raw.get("examples", ""),
        eligible=bool(raw.get("eligible", True)),
    )


def _from_format_1(data: dict) -> Ontology:
    """An ontology.json written before issue 22 (model folders built then still ship one).

    Its code knew only the partOf hierarchy, which is right for releases up to v0.21.0: such a file loads with every
    concept eligible and its implies/contradicts relations as stored (those releases state each impliedBy and
    contradictedBy fact in the forward direction too, so nothing is lost). A release with `specializes` was misread
    by that code (composition taken for the taxonomy, no eligibility), so such a file is refused.
    """
    concepts = {raw["name"]: _concept(raw) for raw in data["concepts"]}
    if any(SPECIALIZES in concept.relations for concept in concepts.values()):
        raise ValueError(
            f"written before issue 22 from release {data.get('version')}, which has specialization (edu:specializes): "
            "that code read its composition as the hierarchy and knew no label eligibility; materialize "
            "ontology_release for that release again and rebuild the model bound to it"
        )
    return Ontology(
        version=data["version"],
        commit=data["commit"],
        concepts=concepts,
        source_files=tuple(data.get("source_files", ())),
        reading=PART_OF_HIERARCHY,
    )
