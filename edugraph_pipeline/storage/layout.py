"""The artifact layout: every asset's name and the files it publishes, written down once.

Asset code, the training step, the CLIs and the serving app open artifacts through these accessors, so a folder
or file name appears in this module only. Each accessor is a small frozen view over an artifact's folder in the
store (`ArtifactStore.asset_dir`: the stable link; pass ``current=True`` for the version folder it points at now,
when several files must come from one version). Plain Python: no Dagster.

Import it as ``from edugraph_pipeline.storage import layout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edugraph_pipeline.ontology.model import Ontology
from edugraph_pipeline.storage.local import ArtifactStore
from edugraph_pipeline.storage.versions import folder_sha256

# ---- asset names
ONTOLOGY_RELEASE = "ontology_release"
KNOWLEDGE_DATASET = "knowledge_dataset"
WORKSHEET_DATASET = "worksheet_dataset"
KNOWLEDGE_DATASET_PUBLICATION = "knowledge_dataset_publication"
WORKSHEET_DATASET_PUBLICATION = "worksheet_dataset_publication"
BASE_MODEL = "base_model"
KNOWLEDGE_ADAPTER = "knowledge_adapter"
TRAINED_ADAPTER = "trained_adapter"
MERGED_MODEL = "merged_model"
MODEL_EVALUATION = "model_evaluation"
HF_PUBLICATION = "hf_publication"
GGUF_MODEL = "gguf_model"
GGUF_PUBLICATION = "gguf_publication"

# ---- file and folder names inside artifacts
ONTOLOGY_FILE = "ontology.json"  # an ontology release's parsed concepts; also shipped inside every model folder
DATASET_FOLDER = "dataset"  # a `datasets.save_to_disk` folder
SUMMARY_FILE = "summary.json"
BASE_MODEL_FILE = "base_model.json"  # what base_model resolved: {profile, model_id, revision[, local_folder]}
MODEL_FOLDER = "model"  # a Hub-shaped model folder (config, weights, processor, ontology.json)
ADAPTER_FOLDER = "adapter"  # PEFT safetensors
JOB_RESULT_FILE = "job_result.json"  # the training step's metrics
STAGE_METRICS_FILE = "metrics.json"  # a training stage's metrics beside its adapter (base model, revision)
KNOWLEDGE_ADAPTER_COPY_FOLDER = "knowledge_adapter"  # stage 2 keeps the stage-1 adapter it trained on top of
PROMPTS_FILE = "edugraph_prompts.json"  # the production prompts inside every merged model folder
EVALUATION_FILE = "evaluation.json"
ERROR_REPORT_FILE = "error_report.html"
GGUF_MANIFEST_FILE = "gguf.json"  # a gguf_model's files, sizes, quantization and image-token bounds
MODEL_VERSION = "model_sha256"  # merged_model's lineage field holding its data version (`model_version`)


@dataclass(frozen=True)
class OntologyReleaseFiles:
    root: Path

    @property
    def ontology(self) -> Path:
        return self.root / ONTOLOGY_FILE


@dataclass(frozen=True)
class DatasetFiles:
    root: Path

    @property
    def dataset(self) -> Path:
        return self.root / DATASET_FOLDER

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE


@dataclass(frozen=True)
class BaseModelFiles:
    root: Path

    @property
    def record(self) -> Path:
        return self.root / BASE_MODEL_FILE

    @property
    def model(self) -> Path:
        """The pretrained tiny base (the tiny profile only; other profiles name a Hub id in `record`)."""
        return self.root / MODEL_FOLDER


@dataclass(frozen=True)
class AdapterFiles:
    root: Path

    @property
    def adapter(self) -> Path:
        return self.root / ADAPTER_FOLDER

    @property
    def result(self) -> Path:
        return self.root / JOB_RESULT_FILE


@dataclass(frozen=True)
class ModelFiles:
    root: Path

    @property
    def model(self) -> Path:
        return self.root / MODEL_FOLDER

    @property
    def ontology(self) -> Path:
        return self.model / ONTOLOGY_FILE


@dataclass(frozen=True)
class EvaluationFiles:
    root: Path

    @property
    def record(self) -> Path:
        return self.root / EVALUATION_FILE

    @property
    def error_report(self) -> Path:
        return self.root / ERROR_REPORT_FILE


def _folder(store: ArtifactStore, asset: str, partition: str | None, current: bool) -> Path:
    return store.current(asset, partition) if current else store.asset_dir(asset, partition)


def ontology_release(store: ArtifactStore, tag: str, *, current: bool = False) -> OntologyReleaseFiles:
    return OntologyReleaseFiles(_folder(store, ONTOLOGY_RELEASE, tag, current))


def knowledge_dataset(store: ArtifactStore, tag: str, *, current: bool = False) -> DatasetFiles:
    return DatasetFiles(_folder(store, KNOWLEDGE_DATASET, tag, current))


def worksheet_dataset(store: ArtifactStore, tag: str, *, current: bool = False) -> DatasetFiles:
    return DatasetFiles(_folder(store, WORKSHEET_DATASET, tag, current))


def base_model(store: ArtifactStore, *, current: bool = False) -> BaseModelFiles:
    return BaseModelFiles(_folder(store, BASE_MODEL, None, current))


def adapter(store: ArtifactStore, asset: str, *, current: bool = False) -> AdapterFiles:
    """`knowledge_adapter` or `trained_adapter`."""
    if asset not in (KNOWLEDGE_ADAPTER, TRAINED_ADAPTER):
        raise ValueError(f"{asset!r} is not an adapter asset")
    return AdapterFiles(_folder(store, asset, None, current))


def merged_model(store: ArtifactStore, *, current: bool = False) -> ModelFiles:
    return ModelFiles(_folder(store, MERGED_MODEL, None, current))


def model_evaluation(store: ArtifactStore, *, current: bool = False) -> EvaluationFiles:
    return EvaluationFiles(_folder(store, MODEL_EVALUATION, None, current))


def model_version(folder: str | Path) -> str:
    """The identity of a model: the content hash of every file of its folder (weights, config, processor,
    ontology). `merged_model` records it as its data version, `model_evaluation` as the model it evaluated, the
    serving app reports it; the same value wherever the folder is copied or mounted."""
    return folder_sha256(Path(folder))


class ArtifactMissing(FileNotFoundError):
    """An artifact a step needs is not materialized; the message names it and what to materialize."""


def require(path: Path, asset: str, partition: str | None = None) -> Path:
    if not path.exists():
        where = f" for partition {partition}" if partition else ""
        raise ArtifactMissing(f"{path} does not exist: materialize {asset}{where} first")
    return path


def load_ontology(store: ArtifactStore, tag: str) -> Ontology:
    """The normalised ontology of a materialized `ontology_release` partition."""
    return Ontology.load(require(ontology_release(store, tag).ontology, ONTOLOGY_RELEASE, tag))


def current_model_folder(store: ArtifactStore) -> Path:
    """The current merged model's folder, resolved to its version: files read from it all belong to one model."""
    require(merged_model(store).model / "config.json", MERGED_MODEL)
    return merged_model(store, current=True).model


def release_of(store: ArtifactStore, asset: str) -> str:
    """The ontology release an unpartitioned model artifact was built from (recorded in its lineage)."""
    return store.lineage(asset)["ontology_version"]
