"""The first two assets of the DAG: an ontology release, and the knowledge-infusion Q&A dataset built from it."""


import hashlib
import json
from collections import Counter

import dagster as dg
import datasets

from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.partitions import ontology_partitions
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.knowledge.qa import LABEL_ANSWER_KINDS, count_by_kind, generate_pairs
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology
from edugraph_pipeline.ontology.parsing import OntologyReleaseError, parse_release
from edugraph_pipeline.releases import ReleaseSourceError
from edugraph_pipeline.storage import layout
from edugraph_pipeline.storage.layout import DATASET_FOLDER, ONTOLOGY_FILE, load_ontology


@dg.asset(
    partitions_def=ontology_partitions,
    group_name="ontology",
    code_version="2",
    kinds={"rdf", "git"},
    description="One EduGraph ontology release (a tag of EDUGRAPH_ONTOLOGY_REPO), normalised to concepts "
    "with dimension, definition, taxonomy, composition, relations, label eligibility and logic, read the way the "
    "release's own schema says (partOf hierarchy up to v0.21.0; specialization and composition apart after).",
)
@reported_as_failure
def ontology_release(
    context: dg.AssetExecutionContext,
    ontology_repository: OntologyRepository,
    artifact_store: ArtifactStoreResource,
) -> dg.MaterializeResult:
    tag = context.partition_key
    context.log.info(f"reading release {tag} from {ontology_repository.display_remote}")
    try:
        snapshot = ontology_repository.read(tag)
        ontology = parse_release(snapshot.files, version=tag, commit=snapshot.commit)
    except (ReleaseSourceError, OntologyReleaseError) as error:
        # The message names the file and the problem; the previous materialization stays untouched.
        raise dg.Failure(description=f"ontology release {tag}: {error}") from error
    counts = ontology.counts()
    content_hash = ontology.content_sha256()
    eligible = {dimension: len(ontology.eligible_labels(dimension)) for dimension in DIMENSIONS}
    relations = ontology.relation_counts()
    context.log.info(
        f"{tag}: {len(ontology)} concepts {counts} from {', '.join(ontology.source_files)}; read as {ontology.reading}; "
        f"eligible labels {eligible}; relations {relations}"
    )

    lineage = {
        "ontology_version": tag,
        "source_commit": snapshot.commit,
        "source_remote": ontology_repository.display_remote,
        "released_at": snapshot.committed_at,
        "ontology_sha256": content_hash,
        "reading": ontology.reading,
    }
    store = artifact_store.store()
    with store.publish(layout.ONTOLOGY_RELEASE, tag, lineage) as folder:
        ontology.save(folder / ONTOLOGY_FILE)
        source = folder / "source"
        source.mkdir()
        for name in ontology.source_files:
            (source / name).write_bytes(snapshot.files[name])

    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(store.asset_dir(layout.ONTOLOGY_RELEASE, tag))),
            "ontology_version": tag,
            "source_commit": snapshot.commit,
            "source_remote": ontology_repository.display_remote,
            "released_at": snapshot.committed_at,
            "source_files": dg.MetadataValue.json(list(ontology.source_files)),
            "num_concepts": len(ontology),
            **{f"num_{dimension.lower()}": count for dimension, count in counts.items()},
            "hierarchy_edges": sum(len(concept.parents) for concept in ontology),
            "reading": ontology.reading,
            "ontology_sha256": content_hash,
            "num_eligible_labels": sum(eligible.values()),
            **{f"eligible_{dimension.lower()}": count for dimension, count in eligible.items()},
            "organizational_labels": dg.MetadataValue.json(ontology.organizational_labels()),
            "relations": dg.MetadataValue.json(relations),
        },
        data_version=dg.DataVersion(snapshot.commit),
    )


@dg.asset(
    partitions_def=ontology_partitions,
    deps=[ontology_release],
    group_name="ontology",
    code_version="2",
    kinds={"huggingface"},
    check_specs=[
        dg.AssetCheckSpec("no_duplicate_questions", asset=layout.KNOWLEDGE_DATASET, blocking=True),
        dg.AssetCheckSpec("answers_name_existing_concepts", asset=layout.KNOWLEDGE_DATASET, blocking=True),
        dg.AssetCheckSpec("hierarchy_present", asset=layout.KNOWLEDGE_DATASET, blocking=True),
    ],
    description="Knowledge-infusion Q&A pairs generated from the ontology release (a `datasets` folder).",
)
@reported_as_failure
def knowledge_dataset(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource) -> dg.MaterializeResult:
    tag = context.partition_key
    store = artifact_store.store()
    ontology = load_ontology(store, tag)
    pairs = generate_pairs(ontology)
    rows = [pair.as_row() for pair in pairs]
    by_kind = count_by_kind(pairs)
    context.log.info(f"{tag}: {len(rows)} Q&A pairs {by_kind}")

    content_hash = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    dataset = datasets.Dataset.from_list(rows)
    lineage = {
        "ontology_version": tag,
        "source_commit": ontology.commit,
        "content_sha256": content_hash,
        "ontology_sha256": ontology.content_sha256(),
        "num_rows": len(rows),
    }
    with store.publish(layout.KNOWLEDGE_DATASET, tag, lineage) as folder:
        dataset.save_to_disk(str(folder / DATASET_FOLDER))

    path = store.asset_dir(layout.KNOWLEDGE_DATASET, tag) / DATASET_FOLDER
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "num_rows": len(rows),
            **{f"rows_{kind}": count for kind, count in by_kind.items()},
            "rows_by_kind": dg.MetadataValue.table(
                records=[dg.TableRecord({"kind": kind, "rows": count}) for kind, count in by_kind.items()],
                schema=dg.TableSchema(columns=[dg.TableColumn("kind", "string"), dg.TableColumn("rows", "int")]),
            ),
            "ontology_version": tag,
            "source_commit": ontology.commit,
            "content_sha256": content_hash,
            "ontology_sha256": lineage["ontology_sha256"],
            "preview": dg.MetadataValue.md(_preview(rows)),
        },
        data_version=dg.DataVersion(content_hash),
        check_results=check_knowledge_rows(rows, ontology),
    )


def check_knowledge_rows(rows: list[dict], ontology: Ontology) -> list[dg.AssetCheckResult]:
    duplicates = sorted(text for text, count in Counter(row["instruction"] for row in rows).items() if count > 1)

    unknown: set[str] = set()
    for row in rows:
        if row["kind"] in LABEL_ANSWER_KINDS:
            answer = json.loads(row["output"])
            unknown.update(name for dimension in DIMENSIONS for name in answer.get(dimension, []) if name not in ontology)

    hierarchy_rows = sum(1 for row in rows if row["kind"] in ("parent", "children"))
    return [
        dg.AssetCheckResult(
            check_name="no_duplicate_questions",
            passed=not duplicates,
            metadata={"duplicates": len(duplicates), "examples": dg.MetadataValue.json(duplicates[:5])},
        ),
        dg.AssetCheckResult(
            check_name="answers_name_existing_concepts",
            passed=not unknown,
            metadata={"unknown_concepts": len(unknown), "examples": dg.MetadataValue.json(sorted(unknown)[:5])},
        ),
        dg.AssetCheckResult(
            check_name="hierarchy_present",
            passed=hierarchy_rows > 0 or not ontology.has_hierarchy(),
            metadata={"hierarchy_rows": hierarchy_rows, "release_has_hierarchy": ontology.has_hierarchy()},
        ),
    ]


def _preview(rows: list[dict], per_kind: int = 1) -> str:
    lines = ["| kind | instruction | output |", "| --- | --- | --- |"]
    shown: dict[str, int] = {}
    for row in rows:
        if shown.get(row["kind"], 0) >= per_kind:
            continue
        shown[row["kind"]] = shown.get(row["kind"], 0) + 1
        cells = [row["kind"], row["instruction"][:120], row["output"][:120]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines)
