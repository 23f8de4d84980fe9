"""The merged model and its evaluation, whose blocking check gates publication."""

import json
from pathlib import Path

import dagster as dg

from edugraph_pipeline.defs.ontology.assets import load_ontology
from edugraph_pipeline.defs.partitions import newest_release_dep
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.storage import ArtifactStore, folder_sha256
from edugraph_pipeline.training.config import TINY, model_name

MODEL_FOLDER = "model"
EVALUATION_FILE = "evaluation.json"
GATE_CHECK = "evaluation_gate"


MODEL_VERSION = "model_sha256"  # merged_model's data version: the content hash of its model folder


def model_folder(store: ArtifactStore) -> Path:
    """The current merged model's folder, resolved to its version: files read from it all belong to one model."""
    folder = store.asset_dir("merged_model") / MODEL_FOLDER
    if not (folder / "config.json").exists():
        raise dg.Failure(f"{folder} holds no model: materialize merged_model first")
    return store.current("merged_model") / MODEL_FOLDER


def model_version(folder: Path) -> str:
    """The identity of a model: a hash of every file of its folder (weights, config, processor, ontology)."""
    return folder_sha256(folder)


def passed_evaluation(store: ArtifactStore, version: str) -> dict:
    """`model_evaluation`'s record, if it evaluated exactly the model of content hash `version` and it passed.

    Every publication asset asks this, whichever run it is in: a blocking check only stops its own run, and a
    run that re-merges a model without evaluating it must not publish on the strength of an older model's pass.
    """
    path = store.asset_dir("model_evaluation") / EVALUATION_FILE
    if not path.exists():
        raise dg.Failure(f"{path} does not exist: materialize model_evaluation first")
    evaluation = json.loads(path.read_text(encoding="utf-8"))
    evaluated = evaluation.get("model_version")
    if evaluated != version:
        raise dg.Failure(
            f"the merged model {version[:12]} was not evaluated (model_evaluation evaluated "
            f"{str(evaluated)[:12]}), not publishing: materialize model_evaluation again"
        )
    if not evaluation.get("passed"):
        reasons = "; ".join(evaluation.get("reasons") or []) or "no reason recorded"
        tag = evaluation.get("ontology_version")
        raise dg.Failure(f"model for {tag} failed its evaluation gate, not publishing: {reasons}")
    return evaluation


def release_of(store: ArtifactStore, asset: str) -> str:
    """The ontology release an unpartitioned model artifact was built from (recorded in its lineage)."""
    return store.lineage(asset)["ontology_version"]


@dg.asset(
    deps=[dg.AssetKey("trained_adapter")],
    group_name="model",
    code_version="1",
    kinds={"pytorch", "huggingface", "safetensors"},
    description="The knowledge and worksheet adapters merged into the base: a standalone safetensors model folder "
    "with its processor, prompts and the bound ontology (ontology.json), loadable offline.",
)
def merged_model(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource) -> dg.MaterializeResult:
    from edugraph_pipeline.training.merge import merge_into_folder, trained_artifact, trained_revision

    store = artifact_store.store()
    trained = store.lineage("trained_adapter")
    tag = trained["ontology_version"]
    base, adapters = trained_artifact(store.asset_dir("trained_adapter"))
    ontology = load_ontology(store, tag)
    lineage = {
        "ontology_version": tag,
        "base_model": base,
        "adapters": adapters,
        "trained_adapter_version": trained.get("data_version"),
    }
    folder = store.asset_dir("merged_model") / MODEL_FOLDER
    previous = _previous_merge(store)
    if previous and all(previous.get(key) == value for key, value in lineage.items()) and previous.get("info"):
        context.log.info(f"the adapters are unchanged since {previous['created_at']}: not merging again")
        info = previous["info"]
    else:
        context.log.info(f"merging {len(adapters)} adapter(s) into {base}")
        with store.publish("merged_model", None, lineage) as staging:
            info = merge_into_folder(
                base, adapters, adapters[-1], staging / MODEL_FOLDER,
                revision=trained_revision(store.asset_dir("trained_adapter")),
            )
            ontology.save(staging / MODEL_FOLDER / "ontology.json")
            lineage["info"] = info  # publish() writes the lineage after this block
            lineage[MODEL_VERSION] = model_version(staging / MODEL_FOLDER)
    version = lineage.get(MODEL_VERSION) or previous.get(MODEL_VERSION) or model_version(model_folder(store))
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
        return store.lineage("merged_model")
    except FileNotFoundError:
        return None


class EvaluationConfig(dg.Config):
    gate_profile: str = ""  # "tiny" or "production"; empty: "tiny" for EDUGRAPH_MODEL=tiny, else "production"
    thresholds: dict[str, float] = {}  # overrides of single thresholds, e.g. {"min_exact_match": 0.5}
    batch_size: int = 8
    limit: int = 0  # > 0: evaluate only the first rows of the split


@dg.asset(
    deps=[dg.AssetKey("merged_model"), newest_release_dep("worksheet_dataset")],
    group_name="model",
    code_version="1",
    kinds={"pytorch"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="model_evaluation",
            blocking=True,
            description="The merged model meets the configured thresholds (and beats the trivial baseline).",
        )
    ],
    description="The merged model on the validation split of worksheet_dataset (worksheets and unsupported "
    "material): JSON validity, exact match, per-dimension precision/recall/F1, refusal accuracy, and the same "
    "for the most-frequent-label-set baseline.",
)
def model_evaluation(
    context: dg.AssetExecutionContext, config: EvaluationConfig, artifact_store: ArtifactStoreResource
) -> dg.MaterializeResult:
    from edugraph_pipeline.evaluation.metrics import gate_thresholds
    from edugraph_pipeline.evaluation.render import report_metadata
    from edugraph_pipeline.evaluation.run import evaluate_model
    from edugraph_pipeline.inference.classifier import Classifier

    store = artifact_store.store()
    folder = model_folder(store)
    version = model_version(folder)  # of the files evaluated, not of what lineage says
    tag = release_of(store, "merged_model")
    dataset = store.asset_dir("worksheet_dataset", tag) / "dataset"
    profile = config.gate_profile or ("tiny" if model_name() == TINY else "production")
    thresholds = gate_thresholds(profile, config.thresholds or None)
    classifier = Classifier.from_folder(folder)
    run = evaluate_model(
        classifier, dataset, split="validation", batch_size=config.batch_size, limit=config.limit or None,
        thresholds=thresholds,
    )
    context.log.info(
        f"{tag}: exact match {run.report.exact_match:.3f} on {run.report.n} rows in {run.seconds:.1f}s; "
        f"gate ({profile}) {'passed' if run.passed else 'failed: ' + '; '.join(run.reasons)}"
    )
    record = {**run.to_json(), "gate_profile": profile, "ontology_version": tag, "model_version": version}
    evaluated = {"ontology_version": tag, "passed": run.passed, "model_version": version}
    with store.publish("model_evaluation", None, evaluated) as staging:
        (staging / EVALUATION_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return dg.MaterializeResult(
        metadata={
            **report_metadata(run.report, (run.passed, run.reasons)),
            "path": dg.MetadataValue.path(str(store.asset_dir("model_evaluation") / EVALUATION_FILE)),
            "ontology_version": tag,
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
