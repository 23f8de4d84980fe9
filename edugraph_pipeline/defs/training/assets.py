"""Training assets: `base_model`, `knowledge_adapter` (stage 1) and `trained_adapter` (stage 2).

Every training step runs through the `training_launcher` resource (a subprocess, the GPU Docker image or a GCP
VM: all run ``python -m edugraph_pipeline.training.entrypoint`` and talk back through Dagster Pipes) with the
artifact's staging folder as its output dir; checkpoints go to a stable work folder
(``<data_dir>/.work/<asset>/latest/<job hash>``) so that a killed run resumes where it stopped.

The per-run knobs (profile, run mode, base model, device, stage-2 LoRA targets, placement override, stage-1
choice) are the assets' run config (`defs/training/run_config.py`), each defaulting to its environment variable.
Where the step ran, in which precision, micro-batch and checkpointing, is in the metadata's ``placement`` table.
"""


import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg

from edugraph_pipeline import settings
from edugraph_pipeline.defs.failures import reported_as_failure
from edugraph_pipeline.defs.partitions import newest_release_dep, release_to_learn_from
from edugraph_pipeline.defs.resources import ArtifactStoreResource
from edugraph_pipeline.defs.training.launchers import TrainingLauncher
from edugraph_pipeline.defs.training.launchers.retry import PREEMPTION_RETRY_POLICY, retried_on_preemption_only
from edugraph_pipeline.defs.training.run_config import (
    FROM_ASSET,
    NO_STAGE_1,
    TrainingChoice,
    TrainingConfig,
    WorksheetTrainingConfig,
)
from edugraph_pipeline.defs.training.training_metadata import adapter_metadata, step_figures
from edugraph_pipeline.storage import UNPARTITIONED, ArtifactStore, layout
from edugraph_pipeline.training.job import TINY_BASE, TrainingJob
from edugraph_pipeline.training.profiles import TINY, stage_config
from edugraph_pipeline.training.tiny_model.base_cache import TinyBaseCache

GPU_POOL = "gpu-training"  # dagster.yaml limits this pool to one step at a time
TRAINING_KINDS = {"pytorch", "huggingface"}


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


def has_artifact(store: ArtifactStore, asset: str, partition: str | None) -> bool:
    try:
        store.lineage(asset, partition)
    except FileNotFoundError:
        return False
    return True


def resolve_base_model(store: ArtifactStore, choice: TrainingChoice) -> dict:
    """What `base_model` recorded: ``{"model_id": <hub id or folder>, "revision": ..., "profile": ...}``; it must
    be of the profile this run trains."""
    files = layout.base_model(store)
    if not files.record.exists():
        raise dg.Failure(f"{files.record} does not exist: materialize {layout.BASE_MODEL} first")
    record = json.loads(files.record.read_text(encoding="utf-8"))
    if record.get("profile") != choice.profile.name:
        raise dg.Failure(
            f"{layout.BASE_MODEL} is of profile {record.get('profile')!r} but this run trains profile "
            f"{choice.profile.name!r}: materialize {layout.BASE_MODEL} with profile {choice.profile.name!r}, or pick "
            f"profile {record.get('profile')!r}"
        )
    if record.get("local_folder"):
        record["model_id"] = str(files.root / record["local_folder"])
    return record


def work_dir_for(store: ArtifactStore, asset: str, partition: str | None, job: TrainingJob) -> Path:
    """Stable per (asset, partition, job content): a rerun of the same job resumes; a changed job starts fresh."""
    digest = hashlib.sha256(json.dumps(job.decisive(), sort_keys=True).encode()).hexdigest()[:12]
    return store.work_root / asset / (partition or UNPARTITIONED) / digest


def reusable_result(store: ArtifactStore, asset: str, identity: str) -> dict | None:
    """The published result of the same job on the same inputs, if there is one: nothing to retrain."""
    try:
        lineage = store.lineage(asset)
    except FileNotFoundError:
        return None
    result = store.asset_dir(asset) / layout.JOB_RESULT_FILE
    if lineage.get("job_identity") != identity or not result.exists():
        return None
    metrics = json.loads(result.read_text(encoding="utf-8"))
    metrics["data_version"] = lineage.get("data_version") or metrics.get("data_version")
    metrics["reused_from"] = lineage.get("created_at")
    metrics["adapter_path"] = str(store.asset_dir(asset) / layout.ADAPTER_FOLDER)
    return metrics


def run_training_job(
    context: dg.AssetExecutionContext,
    launcher: TrainingLauncher,
    job: TrainingJob,
    workdir: Path,
    staging: Path,
    identity: str | None = None,
    store: ArtifactStore | None = None,
) -> dict:
    """Launch the job, then read its metrics back from the staging folder (the step wrote them there). `store` is
    the store the job's paths lie in: a cloud launcher lets the step read and write a GCS store itself."""
    invocation = launcher.launch(context, job=job, workdir=workdir, identity=identity, store=store)
    reported = invocation.get_materialize_result()
    result_file = staging / layout.JOB_RESULT_FILE
    if not result_file.exists():
        raise dg.Failure(f"the training step finished without writing {result_file}", allow_retries=False)
    metrics = json.loads(result_file.read_text(encoding="utf-8"))
    metrics["data_version"] = (
        reported.data_version.value if reported.data_version is not None else metrics.get("data_version")
    )
    return metrics


def _placed(job: TrainingJob, staging: Path, workdir: Path) -> TrainingJob:
    return job.placed(output_dir=str(staging.resolve()), work_dir=str(workdir.resolve()))


# ---------------------------------------------------------------------------------------------------------------
# Assets
# ---------------------------------------------------------------------------------------------------------------


def training_asset(**spec):
    """`@dg.asset` for a training step: its group, kinds and GPU pool, retried after a preemption and only then
    (`retried_on_preemption_only`), with "materialize X first" errors shown as such (`reported_as_failure`)."""

    def define(body):
        return dg.asset(
            group_name="training",
            code_version="1",
            kinds=TRAINING_KINDS,
            pool=GPU_POOL,
            retry_policy=PREEMPTION_RETRY_POLICY,
            **spec,
        )(retried_on_preemption_only(reported_as_failure(body)))

    return define


@training_asset(
    name=layout.BASE_MODEL,
    description="The base model: the pretrained tiny Qwen3-VL (profile tiny, built through the training "
    "launcher), or the hub id / local folder of the chosen profile, pinned to one revision.",
)
def base_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    artifact_store: ArtifactStoreResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    store = artifact_store.store()
    choice = config.resolve()
    prof = choice.profile
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
        with store.publish(layout.BASE_MODEL, None, {**record, **choice.as_record()}) as staging:
            (staging / layout.BASE_MODEL_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
        return dg.MaterializeResult(
            metadata={
                **choice.as_record(),
                "model_id": model_id,
                "revision": revision,
                "source": "local folder" if local.is_dir() else "hub",
            },
            data_version=dg.DataVersion(hashlib.sha256(f"{model_id}@{revision}".encode()).hexdigest()[:24]),
        )

    files = layout.base_model(store)
    job = TrainingJob(stage=TINY_BASE, mode=choice.run_mode)
    cache = TinyBaseCache(settings.cache_dir_for(store.location, artifact_store.cache_dir), choice.run_mode)
    identity = job.identity({"tiny_base": cache.key})  # the key changes with the tiny model's code and config
    metrics = reusable_result(store, layout.BASE_MODEL, identity)
    workdir = work_dir_for(store, layout.BASE_MODEL, None, job)
    if metrics is not None:
        context.log.info(f"tiny base of {metrics['reused_from']} was built by the same job: not pretraining again")
    else:
        lineage = {**choice.as_record(), "job_identity": identity, "tiny_base_key": cache.key}
        with store.publish(layout.BASE_MODEL, None, lineage) as staging:
            metrics = _pretrained_tiny_base(
                context, training_launcher, store, cache, job, staging, workdir, identity
            )
            record = {
                "profile": TINY,
                "local_folder": layout.MODEL_FOLDER,
                "model_id": str(files.model),
                "revision": metrics.get("base_model_revision"),
                "run_mode": choice.run_mode,
            }
            (staging / layout.BASE_MODEL_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    shutil.rmtree(workdir, ignore_errors=True)
    return dg.MaterializeResult(
        metadata={
            **choice.as_record(),
            "model_id": dg.MetadataValue.path(str(files.model)),
            "revision": metrics.get("base_model_revision") or "unknown",
            "reused": metrics.get("reused_from") is not None,
            "pretrain_steps": int(metrics.get("steps") or 0),
            "seconds_per_step": round(float(metrics.get("seconds_per_step") or 0.0), 3),
            "disk_mb": round(int(metrics.get("disk_bytes") or 0) / 2**20, 1),
            **step_figures(metrics),
        },
        data_version=dg.DataVersion(str(metrics.get("data_version"))),
    )


def _pretrained_tiny_base(
    context: dg.AssetExecutionContext,
    launcher: TrainingLauncher,
    store: ArtifactStore,
    cache: TinyBaseCache,
    job: TrainingJob,
    staging: Path,
    workdir: Path,
    identity: str,
) -> dict:
    """The tiny base in `staging`: copied from the cache when this code and config built it before, else pretrained
    through the launcher and kept in the cache."""
    cached = cache.lookup()
    if cached is None:
        metrics = run_training_job(context, launcher, _placed(job, staging, workdir), workdir, staging, identity, store)
        cache.save(staging / layout.MODEL_FOLDER, metrics)
        return metrics
    context.log.info(f"tiny base {cache.key} from the cache ({cache.folder}): the same code and config built it")
    cache.restore(staging / layout.MODEL_FOLDER)
    (staging / layout.JOB_RESULT_FILE).write_text(json.dumps(cached, indent=2), encoding="utf-8")
    return {**cached, "reused_from": str(cache.folder)}


def _train_stage_asset(
    context: dg.AssetExecutionContext,
    store: ArtifactStore,
    launcher: TrainingLauncher,
    choice: TrainingChoice,
    *,
    asset: str,
    stage: str,
    dataset_asset: str,
    knowledge_adapter: str | None,
    extra_metadata: dict,
) -> dg.MaterializeResult:
    # Both stages learn from the newest ontology release that has worksheet content (not always the newest one).
    tag = release_to_learn_from(
        context.instance, lambda release: has_artifact(store, layout.WORKSHEET_DATASET, release),
        newest=context.asset_partition_key_for_input(dataset_asset),
    )
    base = resolve_base_model(store, choice)
    dataset_path = store.asset_dir(dataset_asset, tag) / layout.DATASET_FOLDER
    if not dataset_path.exists():
        raise dg.Failure(f"{dataset_path} does not exist: materialize {dataset_asset} for partition {tag} first")
    upstream = {dataset_asset: lineage_version(store, dataset_asset, tag)}
    final = store.asset_dir(asset)
    # Store paths stay as the store names them (absolute, not resolved): `<asset>/<key>` is a link to the current
    # version folder, which a later publication may remove; the link path is stable, so job identities are too.
    cfg = stage_config(
        stage,
        base_model=base["model_id"],
        base_revision=base.get("revision"),
        dataset_path=str(dataset_path.absolute()),
        output_dir="",  # placed below, inside the publication
        knowledge_adapter=knowledge_adapter,
        prof=choice.profile,
        mode=choice.run_mode,
        device=choice.device,
        lora_targets=choice.lora_targets,
        placement=choice.placement,
        save_minutes=choice.save_minutes,
    )
    job = TrainingJob(stage=stage, mode=choice.run_mode, config=cfg, log_every=cfg.logging_steps)
    inputs = {
        **upstream,
        "base_model": base.get("revision"),
        "knowledge_adapter": extra_metadata.get("knowledge_adapter_version"),
    }
    # named as the store names them (not this machine's mirror paths): another machine reuses the same job
    identity = TrainingJob.from_dict(store.portable(job.to_dict())).identity(inputs)
    lineage = {
        "ontology_version": tag,
        **choice.as_record(),
        "base_model": store.portable(base["model_id"]),
        "base_model_revision": base.get("revision"),
        "upstream_versions": upstream,
        "knowledge_adapter": store.portable(knowledge_adapter),
        "job_identity": identity,
    }
    extra = {
        "ontology_version": tag,
        "upstream_versions": dg.MetadataValue.json(upstream),
        **choice.as_record(),
        **extra_metadata,
    }
    previous = reusable_result(store, asset, identity)
    if previous is not None:
        context.log.info(f"{asset}: same job on the same inputs as the artifact of {previous['reused_from']}; not retraining")
        metadata = adapter_metadata(previous, final.absolute(), final.absolute(), {**extra, "reused": True})
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(str(previous["data_version"])))

    workdir = work_dir_for(store, asset, None, job)
    with store.publish(asset, None, lineage) as staging:
        context.log.info(
            f"{asset} {tag}: stage {stage} on {base['model_id']} ({choice.profile.name}, {choice.run_mode})"
        )
        metrics = run_training_job(context, launcher, _placed(job, staging, workdir), workdir, staging, identity, store)
        lineage["data_version"] = metrics["data_version"]  # publish() writes the lineage after this block
        metadata = adapter_metadata(metrics, staging.resolve(), final.absolute(), {**extra, "reused": False})
    shutil.rmtree(workdir, ignore_errors=True)  # published: the checkpoints are no longer needed
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(str(metrics["data_version"])))


@training_asset(
    name=layout.KNOWLEDGE_ADAPTER,
    deps=[dg.AssetKey(layout.BASE_MODEL), newest_release_dep(layout.KNOWLEDGE_DATASET)],
    description="Stage 1: a text-only LoRA adapter teaching the ontology (knowledge Q&A), PEFT safetensors.",
)
def knowledge_adapter(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    artifact_store: ArtifactStoreResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    return _train_stage_asset(
        context,
        artifact_store.store(),
        training_launcher,
        config.resolve(),
        asset=layout.KNOWLEDGE_ADAPTER,
        stage="knowledge",
        dataset_asset=layout.KNOWLEDGE_DATASET,
        knowledge_adapter=None,
        extra_metadata={},
    )


def _knowledge_adapter_for(store: ArtifactStore, tag: str, choice: str) -> tuple[str | None, str]:
    """The stage-1 adapter for `choice` (`asset`, `none` or a path) and how it was found."""
    if choice == NO_STAGE_1:
        return None, "skipped"
    if choice != FROM_ASSET:
        path = Path(choice).expanduser().resolve()
        if not (path / "adapter_config.json").exists():
            raise dg.Failure(f"knowledge_adapter={choice}: no PEFT adapter (adapter_config.json) there")
        return str(path), "reused"
    path = layout.adapter(store, layout.KNOWLEDGE_ADAPTER).adapter
    if not (path / "adapter_config.json").exists():
        raise dg.Failure(
            f"{path} does not exist: materialize {layout.KNOWLEDGE_ADAPTER} first, or set knowledge_adapter: "
            f"{NO_STAGE_1} (run config) to train without stage 1"
        )
    trained_on = store.lineage(layout.KNOWLEDGE_ADAPTER).get("ontology_version")
    if trained_on != tag:
        raise dg.Failure(
            f"{layout.KNOWLEDGE_ADAPTER} was trained on ontology {trained_on}, the worksheets are labelled with {tag}: "
            f"materialize {layout.KNOWLEDGE_ADAPTER} again (or set knowledge_adapter: {NO_STAGE_1})"
        )
    return str(path.absolute()), "asset"


@training_asset(
    name=layout.TRAINED_ADAPTER,
    deps=[
        dg.AssetKey(layout.BASE_MODEL),
        dg.AssetKey(layout.KNOWLEDGE_ADAPTER),
        newest_release_dep(layout.WORKSHEET_DATASET),
    ],
    description="Stage 2: the knowledge adapter merged into the base, then a multimodal LoRA adapter trained to "
    "label worksheet images (answer-only loss), PEFT safetensors.",
)
def trained_adapter(
    context: dg.AssetExecutionContext,
    config: WorksheetTrainingConfig,
    artifact_store: ArtifactStoreResource,
    training_launcher: TrainingLauncher,
) -> dg.MaterializeResult:
    store = artifact_store.store()
    tag = context.asset_partition_key_for_input(layout.WORKSHEET_DATASET)
    adapter, how = _knowledge_adapter_for(store, tag, config.stage_1_choice())
    extra = {"knowledge_adapter": adapter or "none", "knowledge_adapter_source": how}
    if how == "asset":
        extra["knowledge_adapter_version"] = lineage_version(store, layout.KNOWLEDGE_ADAPTER, None)
    return _train_stage_asset(
        context,
        store,
        training_launcher,
        config.resolve(),
        asset=layout.TRAINED_ADAPTER,
        stage="worksheet",
        dataset_asset=layout.WORKSHEET_DATASET,
        knowledge_adapter=adapter,
        extra_metadata=extra,
    )
