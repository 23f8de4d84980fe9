"""Training assets: `base_model`, `knowledge_adapter` (stage 1) and `trained_adapter` (stage 2).

Every training step runs through the `training_launcher` resource (a subprocess, the GPU Docker image or a GCP
VM: all run ``python -m edugraph_pipeline.training.entrypoint`` and talk back through Dagster Pipes) with the
artifact's staging folder as its output dir; checkpoints go to a stable work folder
(``<data_dir>/.work/<asset>/latest/<job hash>``) so that a killed run resumes where it stopped.

Knobs (environment, read when the asset runs): ``EDUGRAPH_MODEL`` (tiny|2b|4b|8b, default tiny),
``EDUGRAPH_BASE_MODEL`` (hub id or local folder overriding the profile's base), ``EDUGRAPH_RUN_MODE``
(train|test, default train), ``EDUGRAPH_DEVICE`` (auto|cpu|cuda), ``EDUGRAPH_KNOWLEDGE_ADAPTER`` (empty: use the knowledge_adapter asset; ``none``:
skip stage 1; a path: reuse that adapter).
"""


import base64
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import dagster as dg

from edugraph_pipeline.defs.partitions import newest_release_dep
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.defs.training.launchers import TrainingLauncher
from edugraph_pipeline.storage import UNPARTITIONED, ArtifactStore
from edugraph_pipeline.training.config import (
    TINY,
    model_name,
    profile,
    run_mode,
    stage_config,
)

KNOWLEDGE_ADAPTER_ENV = "EDUGRAPH_KNOWLEDGE_ADAPTER"
BASE_MODEL_ASSET = "base_model"
KNOWLEDGE_ADAPTER_ASSET = "knowledge_adapter"
TRAINED_ADAPTER_ASSET = "trained_adapter"
DATASET_FOLDER = "dataset"
BASE_MODEL_FILE = "base_model.json"
MODEL_FOLDER = "model"
ADAPTER_FOLDER = "adapter"
RESULT_FILE = "job_result.json"
TRAINING_CODE_VERSION = "2"  # bump when a change to the training code should retrain unchanged inputs
GPU_POOL = "gpu-training"  # dagster.yaml limits this pool to one step at a time


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def lineage_version(store: ArtifactStore, asset: str, partition: str | None) -> str:
    """A stable version of an upstream artifact: its content hash when recorded, else a hash of its lineage."""
    lineage = store.lineage(asset, partition)
    if lineage.get("data_version"):
        return str(lineage["data_version"])
    if lineage.get("content_sha256"):
        return str(lineage["content_sha256"])[:16]
    stable = {k: v for k, v in lineage.items() if k != "created_at"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_base_model(store: ArtifactStore) -> dict:
    """What `base_model` recorded: ``{"model_id": <hub id or folder>, "revision": ..., "profile": ...}``."""
    path = store.asset_dir(BASE_MODEL_ASSET) / BASE_MODEL_FILE
    if not path.exists():
        raise dg.Failure(f"{path} does not exist: materialize {BASE_MODEL_ASSET} first")
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("local_folder"):
        record["model_id"] = str(store.asset_dir(BASE_MODEL_ASSET) / record["local_folder"])
    return record


def _stable_job(job: dict) -> dict:
    """The job without the folders it writes to: what decides the result."""
    stable = json.loads(json.dumps(job, default=str))
    stable.get("config", {}).pop("output_dir", None)
    stable.get("config", {}).pop("work_dir", None)
    stable.pop("output_dir", None)
    return stable


def work_dir_for(store: ArtifactStore, asset: str, partition: str | None, job: dict) -> Path:
    """Stable per (asset, partition, job content): a rerun of the same job resumes; a changed job starts fresh."""
    digest = hashlib.sha256(json.dumps(_stable_job(job), sort_keys=True).encode()).hexdigest()[:12]
    return store.root / ".work" / asset / (partition or UNPARTITIONED) / digest


def job_identity(job: dict, inputs: dict) -> str:
    """Everything a training result depends on: the job, the versions of its inputs, the training code."""
    record = {"job": _stable_job(job), "inputs": inputs, "code_version": TRAINING_CODE_VERSION}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def reusable_result(store: ArtifactStore, asset: str, identity: str) -> dict | None:
    """The published result of the same job on the same inputs, if there is one: nothing to retrain."""
    try:
        lineage = store.lineage(asset)
    except FileNotFoundError:
        return None
    result = store.asset_dir(asset) / RESULT_FILE
    if lineage.get("job_identity") != identity or not result.exists():
        return None
    metrics = json.loads(result.read_text(encoding="utf-8"))
    metrics["data_version"] = lineage.get("data_version") or metrics.get("data_version")
    metrics["reused_from"] = lineage.get("created_at")
    metrics["adapter_path"] = str(store.asset_dir(asset) / ADAPTER_FOLDER)
    return metrics


def loss_plot_markdown(history: list) -> str:
    if not history:
        return "No loss logged."
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(s) for s, _ in history]
    losses = [float(v) for _, v in history]
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.plot(steps, losses, marker="." if len(steps) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return f"![loss curve](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def loss_table(history: list, limit: int = 200) -> dg.TableMetadataValue:
    stride = max(1, len(history) // limit)
    picked = history[::stride]
    if history and picked[-1] != history[-1]:
        picked.append(history[-1])
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"step": int(s), "loss": float(v)}) for s, v in picked],
        schema=dg.TableSchema(columns=[dg.TableColumn("step", "int"), dg.TableColumn("loss", "float")]),
    )


def _relocate(value, staging: Path, final: Path):
    """Paths the step reported inside the staging folder, as they read after publishing."""
    if isinstance(value, str) and value.startswith(str(staging)):
        return str(final) + value[len(str(staging)) :]
    return value


def training_metadata(metrics: dict, staging: Path, final: Path, extra: dict) -> dict:
    m = {k: _relocate(v, staging, final) for k, v in metrics.items()}
    metadata: dict = {
        "adapter_path": dg.MetadataValue.path(m["adapter_path"]),
        "base_model": m.get("base_model"),
        "base_model_revision": m.get("base_model_revision") or "unknown",
        "hyperparameters": dg.MetadataValue.json(m.get("hyperparameters") or {}),
        "trainable_parameters": int(m.get("trainable_parameters") or 0),
        "total_parameters": int(m.get("total_parameters") or 0),
        "train_samples": int(m.get("train_samples") or 0),
        "steps": int(m.get("steps") or 0),
        "resumed_from_step": m.get("resumed_from_step") if m.get("resumed_from_step") is not None else -1,
        "wall_time_s": float(m.get("wall_time_s") or 0.0),
        "samples_per_s": float(m.get("samples_per_s") or 0.0),
        "tokens_per_s": float(m.get("tokens_per_s") or 0.0),
        "peak_memory_mb": round(int(m.get("peak_memory_bytes") or 0) / 2**20, 1),
        "device": m.get("device") or "unknown",
        "train_loss": float(m.get("train_loss") or 0.0),
        "loss_curve": dg.MetadataValue.md(loss_plot_markdown(m.get("loss_history") or [])),
        "loss_table": loss_table(m.get("loss_history") or []),
        **extra,
    }
    return metadata


def run_training_job(
    context: dg.AssetExecutionContext, launcher: TrainingLauncher, job: dict, workdir: Path, staging: Path
) -> dict:
    """Launch the job, then read its metrics back from the staging folder (the step wrote them there)."""
    invocation = launcher.launch(context, job=job, workdir=workdir)
    reported = invocation.get_materialize_result()
    result_file = staging / RESULT_FILE
    if not result_file.exists():
        raise dg.Failure(f"the training step finished without writing {result_file}")
    metrics = json.loads(result_file.read_text(encoding="utf-8"))
    metrics["data_version"] = (
        reported.data_version.value if reported.data_version is not None else metrics.get("data_version")
    )
    return metrics


# ---------------------------------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------------------------------


@dg.asset(
    name=BASE_MODEL_ASSET,
    group_name="training",
    code_version="1",
    kinds={"pytorch", "huggingface"},
    pool=GPU_POOL,
    description="The base model: the pretrained tiny Qwen3-VL (EDUGRAPH_MODEL=tiny, built through the training "
    "launcher), or the hub id / local folder of the chosen profile (EDUGRAPH_MODEL, EDUGRAPH_BASE_MODEL).",
)
def base_model(
    context: dg.AssetExecutionContext,
    artifact_store: ArtifactStoreResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    store = artifact_store.store()
    prof = profile()
    mode = run_mode()
    if prof.base_model is not None:
        from edugraph_pipeline.settings import setting
        from edugraph_pipeline.training.revision import RevisionError, resolve_revision

        model_id = prof.base_model
        local = Path(model_id).expanduser()
        if local.is_dir():
            model_id = str(local.resolve())
        try:  # resolved once: every later step loads exactly this commit (or verifies this folder hash)
            revision = resolve_revision(model_id, endpoint=setting("HF_ENDPOINT"))
        except RevisionError as exc:
            raise dg.Failure(str(exc)) from None
        context.log.info(f"base model {model_id} pinned at {revision}")
        record = {"profile": prof.name, "model_id": model_id, "revision": revision}
        with store.publish(BASE_MODEL_ASSET, None, record) as staging:
            (staging / BASE_MODEL_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        return dg.MaterializeResult(
            metadata={
                "profile": prof.name,
                "model_id": model_id,
                "revision": revision,
                "source": "local folder" if local.is_dir() else "hub",
            },
            data_version=dg.DataVersion(hashlib.sha256(f"{model_id}@{revision}".encode()).hexdigest()[:24]),
        )

    final = store.asset_dir(BASE_MODEL_ASSET)
    job = {"stage": "tiny_base", "mode": mode}
    identity = job_identity(job, {})
    metrics = reusable_result(store, BASE_MODEL_ASSET, identity)
    workdir = work_dir_for(store, BASE_MODEL_ASSET, None, job)
    if metrics is not None:
        context.log.info(f"tiny base of {metrics['reused_from']} was built by the same job: not pretraining again")
    else:
        with store.publish(BASE_MODEL_ASSET, None, {"profile": TINY, "run_mode": mode, "job_identity": identity}) as staging:
            job["output_dir"] = str(staging.resolve())
            metrics = run_training_job(context, training_launcher, job, workdir, staging)
            record = {
                "profile": TINY,
                "local_folder": MODEL_FOLDER,
                "model_id": str(final / MODEL_FOLDER),
                "revision": metrics.get("base_model_revision"),
                "run_mode": mode,
            }
            (staging / BASE_MODEL_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    shutil.rmtree(workdir, ignore_errors=True)
    history = metrics.get("loss_history") or []
    return dg.MaterializeResult(
        metadata={
            "profile": TINY,
            "model_id": dg.MetadataValue.path(str(final / MODEL_FOLDER)),
            "revision": metrics.get("base_model_revision") or "unknown",
            "run_mode": mode,
            "reused": metrics.get("reused_from") is not None,
            "pretrain_steps": int(metrics.get("steps") or 0),
            "wall_time_s": float(metrics.get("wall_time_s") or 0.0),
            "seconds_per_step": float(metrics.get("seconds_per_step") or 0.0),
            "disk_mb": round(int(metrics.get("disk_bytes") or 0) / 2**20, 1),
            "device": metrics.get("device") or "unknown",
            "peak_memory_mb": round(int(metrics.get("peak_memory_bytes") or 0) / 2**20, 1),
            "loss_curve": dg.MetadataValue.md(loss_plot_markdown(history)),
            "loss_table": loss_table(history),
        },
        data_version=dg.DataVersion(str(metrics.get("data_version"))),
    )


def _train_stage_asset(
    context: dg.AssetExecutionContext,
    store: ArtifactStore,
    launcher: TrainingLauncher,
    *,
    asset: str,
    stage: str,
    dataset_asset: str,
    knowledge_adapter: str | None,
    extra_metadata: dict,
) -> dg.MaterializeResult:
    tag = context.asset_partition_key_for_input(dataset_asset)
    base = resolve_base_model(store)
    dataset_path = store.asset_dir(dataset_asset, tag) / DATASET_FOLDER
    if not dataset_path.exists():
        raise dg.Failure(f"{dataset_path} does not exist: materialize {dataset_asset} for partition {tag} first")
    upstream = {dataset_asset: lineage_version(store, dataset_asset, tag)}
    final = store.asset_dir(asset)
    lineage = {
        "ontology_version": tag,
        "profile": model_name(),
        "run_mode": run_mode(),
        "base_model": base["model_id"],
        "base_model_revision": base.get("revision"),
        "upstream_versions": upstream,
        "knowledge_adapter": knowledge_adapter,
    }
    # Store paths stay as the store names them (absolute, not resolved): `<asset>/<key>` is a link to the current
    # version folder, which a later publication may remove; the link path is stable, so job identities are too.
    cfg = stage_config(
        stage,
        base_model=base["model_id"],
        base_revision=base.get("revision"),
        dataset_path=str(dataset_path.absolute()),
        output_dir=str(final.absolute()),
        knowledge_adapter=knowledge_adapter,
    )
    job = {"stage": stage, "config": cfg.to_dict(), "log_every": cfg.logging_steps}
    inputs = {**upstream, "base_model": base.get("revision"), "knowledge_adapter": extra_metadata.get("knowledge_adapter_version")}
    lineage["job_identity"] = identity = job_identity(job, inputs)
    extra = {
        "ontology_version": tag,
        "upstream_versions": dg.MetadataValue.json(upstream),
        "profile": model_name(),
        "run_mode": run_mode(),
        **extra_metadata,
    }
    previous = reusable_result(store, asset, identity)
    if previous is not None:
        context.log.info(f"{asset}: same job on the same inputs as the artifact of {previous['reused_from']}; not retraining")
        metadata = training_metadata(previous, final.absolute(), final.absolute(), {**extra, "reused": True})
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(str(previous["data_version"])))

    workdir = work_dir_for(store, asset, None, job)
    with store.publish(asset, None, lineage) as staging:
        job["config"]["output_dir"] = str(staging.resolve())
        job["config"]["work_dir"] = str(workdir.resolve())
        context.log.info(f"{asset} {tag}: stage {stage} on {base['model_id']} ({model_name()}, {run_mode()})")
        metrics = run_training_job(context, launcher, job, workdir, staging)
        lineage["data_version"] = metrics["data_version"]  # publish() writes the lineage after this block
        metadata = training_metadata(metrics, staging.resolve(), final.absolute(), {**extra, "reused": False})
    shutil.rmtree(workdir, ignore_errors=True)  # published: the checkpoints are no longer needed
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(str(metrics["data_version"])))


@dg.asset(
    name=KNOWLEDGE_ADAPTER_ASSET,
    deps=[dg.AssetKey(BASE_MODEL_ASSET), newest_release_dep("knowledge_dataset")],
    group_name="training",
    code_version="1",
    kinds={"pytorch", "huggingface"},
    pool=GPU_POOL,
    description="Stage 1: a text-only LoRA adapter teaching the ontology (knowledge Q&A), PEFT safetensors.",
)
def knowledge_adapter(
    context: dg.AssetExecutionContext,
    artifact_store: ArtifactStoreResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    return _train_stage_asset(
        context,
        artifact_store.store(),
        training_launcher,
        asset=KNOWLEDGE_ADAPTER_ASSET,
        stage="knowledge",
        dataset_asset="knowledge_dataset",
        knowledge_adapter=None,
        extra_metadata={},
    )


def _knowledge_adapter_for(store: ArtifactStore, tag: str) -> tuple[str | None, str]:
    choice = os.environ.get(KNOWLEDGE_ADAPTER_ENV, "").strip()
    if choice.lower() == "none":
        return None, "skipped"
    if choice:
        path = Path(choice).expanduser().resolve()
        if not (path / "adapter_config.json").exists():
            raise dg.Failure(f"{KNOWLEDGE_ADAPTER_ENV}={choice}: no PEFT adapter (adapter_config.json) there")
        return str(path), "reused"
    path = store.asset_dir(KNOWLEDGE_ADAPTER_ASSET) / ADAPTER_FOLDER
    if not (path / "adapter_config.json").exists():
        raise dg.Failure(
            f"{path} does not exist: materialize {KNOWLEDGE_ADAPTER_ASSET} first, or set "
            f"{KNOWLEDGE_ADAPTER_ENV}=none to train without stage 1"
        )
    trained_on = store.lineage(KNOWLEDGE_ADAPTER_ASSET).get("ontology_version")
    if trained_on != tag:
        raise dg.Failure(
            f"{KNOWLEDGE_ADAPTER_ASSET} was trained on ontology {trained_on}, the worksheets are labelled with {tag}: "
            f"materialize {KNOWLEDGE_ADAPTER_ASSET} again (or set {KNOWLEDGE_ADAPTER_ENV}=none)"
        )
    return str(path.absolute()), "asset"


@dg.asset(
    name=TRAINED_ADAPTER_ASSET,
    deps=[dg.AssetKey(BASE_MODEL_ASSET), dg.AssetKey(KNOWLEDGE_ADAPTER_ASSET), newest_release_dep("worksheet_dataset")],
    group_name="training",
    code_version="1",
    kinds={"pytorch", "huggingface"},
    pool=GPU_POOL,
    description="Stage 2: the knowledge adapter merged into the base, then a multimodal LoRA adapter trained to "
    "label worksheet images (answer-only loss), PEFT safetensors.",
)
def trained_adapter(
    context: dg.AssetExecutionContext,
    artifact_store: ArtifactStoreResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    store = artifact_store.store()
    tag = context.asset_partition_key_for_input("worksheet_dataset")
    adapter, how = _knowledge_adapter_for(store, tag)
    extra = {"knowledge_adapter": adapter or "none", "knowledge_adapter_source": how}
    if how == "asset":
        extra["knowledge_adapter_version"] = lineage_version(store, KNOWLEDGE_ADAPTER_ASSET, None)
    return _train_stage_asset(
        context,
        store,
        training_launcher,
        asset=TRAINED_ADAPTER_ASSET,
        stage="worksheet",
        dataset_asset="worksheet_dataset",
        knowledge_adapter=adapter,
        extra_metadata=extra,
    )


TRAINING_ASSETS = [base_model, knowledge_adapter, trained_adapter]
__all__ = ["TRAINING_ASSETS", "base_model", "knowledge_adapter", "trained_adapter"]
