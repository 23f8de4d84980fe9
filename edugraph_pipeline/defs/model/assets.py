"""The merged model and its evaluation, whose blocking check gates publication."""

import json

import dagster as dg

from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.model.evaluation_metadata import comparable_metadata, content_facts, report_metadata
from edugraph_pipeline.defs.partitions import newest_release_dep
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.storage import ArtifactStore, layout
from edugraph_pipeline.storage.layout import (
    MODEL_VERSION,
    current_model_folder,
    load_ontology,
    model_version,
    release_of,
)
from edugraph_pipeline.training.profiles import TINY

GATE_CHECK = "evaluation_gate"


@dg.asset(
    deps=[dg.AssetKey(layout.TRAINED_ADAPTER)],
    group_name="model",
    code_version="1",
    kinds={"pytorch", "huggingface", "safetensors"},
    description="The knowledge and worksheet adapters merged into the base: a standalone safetensors model folder "
    "with its processor, prompts and the bound ontology (ontology.json), loadable offline.",
)
@reported_as_failure
def merged_model(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource) -> dg.MaterializeResult:
    from edugraph_pipeline.training.merge import merge_into_folder, trained_artifact, trained_revision

    store = artifact_store.store()
    trained = store.lineage(layout.TRAINED_ADAPTER)
    tag = trained["ontology_version"]
    base, adapters = trained_artifact(store.asset_dir(layout.TRAINED_ADAPTER))
    ontology = load_ontology(store, tag)
    lineage = {
        "ontology_version": tag,
        "base_model": base,
        "adapters": adapters,
        "trained_adapter_version": trained.get("data_version"),
    }
    folder = layout.merged_model(store).model
    previous = _previous_merge(store)
    if previous and all(previous.get(key) == value for key, value in lineage.items()) and previous.get("info"):
        context.log.info(f"the adapters are unchanged since {previous['created_at']}: not merging again")
        info = previous["info"]
    else:
        context.log.info(f"merging {len(adapters)} adapter(s) into {base}")
        with store.publish(layout.MERGED_MODEL, None, lineage) as staging:
            staged = layout.ModelFiles(staging)
            info = merge_into_folder(
                base, adapters, adapters[-1], staged.model,
                revision=trained_revision(store.asset_dir(layout.TRAINED_ADAPTER)),
            )
            ontology.save(staged.ontology)
            lineage["info"] = info  # publish() writes the lineage after this block
            lineage[MODEL_VERSION] = model_version(staged.model)
    version = lineage.get(MODEL_VERSION) or previous.get(MODEL_VERSION) or model_version(current_model_folder(store))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(folder)),
            "ontology_version": tag,
            "source_commit": ontology.commit,
            "base_model": base,
            "adapters": dg.MetadataValue.json(adapters),
            "parameters": info["parameters"],
            "dtype": info["dtype"],
            "size_mb": round(info["size_bytes"] / 2**20, 1),
            "reused": previous is not None and "info" not in lineage,
            "model_sha256": version,
        },
        data_version=dg.DataVersion(version),
    )


def _previous_merge(store: ArtifactStore) -> dict | None:
    try:
        return store.lineage(layout.MERGED_MODEL)
    except FileNotFoundError:
        return None


class EvaluationConfig(dg.Config):
    gate_profile: str = ""  # "tiny" or "production"; empty: "tiny" for a model of the tiny profile, else "production"
    thresholds: dict[str, float] = {}  # overrides of single thresholds, e.g. {"min_exact_match": 0.5}
    batch_size: int = 8
    limit: int = 0  # > 0: evaluate only the first rows of the split
    max_new_tokens: int = 0  # > 0: the answer budget per image (0: the classifier's default); checks of the path only
    selection_fraction: float = 0.25  # share of validation problems in the selection cohort (the gate scores the rest)


@dg.asset(
    deps=[dg.AssetKey(layout.MERGED_MODEL), newest_release_dep(layout.WORKSHEET_DATASET)],
    group_name="model",
    code_version="1",
    kinds={"pytorch"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="model_evaluation",
            blocking=True,
            description="The merged model meets the configured thresholds, with the baseline margin of its gate "
            "profile (production: against the stronger of the most-frequent and nearest-neighbour baselines).",
        )
    ],
    description="The merged model on the validation split of worksheet_dataset (worksheets and unsupported "
    "material): JSON validity, exact match, per-dimension precision/recall/F1, refusal accuracy, the table "
    "comparable to upstream's (exact-set match on valid outputs, micro/macro/per-example F1, invalid and "
    "incompatible rates, per dimension, question/solution and training-frequency slices) on the selection and the "
    "final cohort, the same for the most-frequent-label-set and the nearest-neighbour (48x48 thumbnail) baselines "
    "built from the train split, and an HTML report of the wrong examples. The gate scores the final cohort.",
)
@reported_as_failure
def model_evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, artifact_store: ArtifactStoreResource
) -> dg.MaterializeResult:
    from edugraph_pipeline.evaluation.gate import gate_thresholds
    from edugraph_pipeline.evaluation.run import evaluate_model
    from edugraph_pipeline.inference.classifier import Classifier

    store = artifact_store.store()
    folder = current_model_folder(store)
    version = model_version(folder)  # of the files evaluated, not of what lineage says
    tag = release_of(store, layout.MERGED_MODEL)
    dataset = layout.worksheet_dataset(store, tag).dataset
    content = content_facts(store.lineage(layout.WORKSHEET_DATASET, tag))
    trained_profile = store.lineage(layout.TRAINED_ADAPTER).get("profile")
    profile = config.gate_profile or ("tiny" if trained_profile == TINY else "production")
    thresholds = gate_thresholds(profile, config.thresholds or None)
    budget = {"max_new_tokens": config.max_new_tokens} if config.max_new_tokens > 0 else {}
    classifier = Classifier.from_folder(folder, **budget)
    run = evaluate_model(
        classifier, dataset, split="validation", batch_size=config.batch_size, limit=config.limit or None,
        thresholds=thresholds, selection_fraction=config.selection_fraction,
    )
    context.log.info(
        f"{tag}: exact match {run.report.exact_match:.3f} on {run.report.n} rows of the final cohort in "
        f"{run.seconds:.1f}s; gate ({profile}) {'passed' if run.passed else 'failed: ' + '; '.join(run.reasons)}"
    )
    record = {**run.to_json(), "gate_profile": profile, "ontology_version": tag, "model_version": version, **content}
    evaluated = {"ontology_version": tag, "passed": run.passed, "model_version": version, **content}
    facts = {"ontology release": tag, "content release": content.get("content_revision") or content.get(
        "content_version") or "", "model": version, "gate": f"{profile}: {'passed' if run.passed else 'failed'}"}
    with store.publish(layout.MODEL_EVALUATION, None, evaluated) as staging:
        files = layout.EvaluationFiles(staging)
        files.record.write_text(json.dumps(record, indent=1), encoding="utf-8")
        files.error_report.write_text(run.error_report(f"Wrong answers of model {version[:12]}", facts),
                                      encoding="utf-8")
    published = layout.model_evaluation(store)
    return dg.MaterializeResult(
        metadata={
            **report_metadata(run.report, (run.passed, run.reasons)),
            **comparable_metadata(run, published.error_report),
            "path": dg.MetadataValue.path(str(published.record)),
            "ontology_version": tag,
            **{key: value or "" for key, value in content.items()},
            "model_version": version,
            "gate_profile": profile,
            "seconds": round(run.seconds, 2),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=GATE_CHECK,
                passed=run.passed,
                metadata={"reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in run.reasons) or "all passed"),
                          "thresholds": dg.MetadataValue.json(run.thresholds)},
            )
        ],
    )
