"""Every configuration knob of the pipeline, read from the environment (or a `.env` file): the one module that
reads the environment.

Each `Setting` holds its variable's default, so no other module restates it. Other modules get values through the
functions here (`setting`, `flag`, `integer`, `number`, `chosen` for a run config field that falls back to its
variable, `other_tool` for variables other tools own) and pass them on as arguments; Dagster resources bind
`dg.EnvVar(name)` where `is_set(name)`. The table in README.md documents the same names; `describe_settings()`
renders it so the two cannot drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

UPSTREAM_ONTOLOGY_REPO = "https://github.com/christian-bick/edugraph-ontology.git"
# The llama-cpp-python sdist whose vendored llama.cpp is built (its converter knows Qwen3VL and --mmproj);
# scripts/build-llama-cpp.sh pins the same version.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# huggingface_hub's older name for the token variable, still honoured when HF_TOKEN is unset.
LEGACY_HUB_TOKEN_VARIABLE = "HUGGING_FACE_HUB_TOKEN"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    secret: bool = False

    def read(self) -> str:
        return os.environ.get(self.name, "") or self.default


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "EDUGRAPH_DATA_DIR",
        "./out",
        "Root of every artifact (datasets, adapters, models): a folder, or `gs://<bucket>/<prefix>` (mirrored locally "
        "under `EDUGRAPH_CACHE_DIR`; docs/deployment.md).",
    ),
    Setting(
        "EDUGRAPH_ONTOLOGY_REPO",
        UPSTREAM_ONTOLOGY_REPO,
        "Git remote (URL or local path) whose release tags are ontology releases.",
    ),
    Setting(
        "EDUGRAPH_CACHE_DIR",
        "",
        "Where git mirrors of release remotes and snapshots of Hub content releases are kept (default: "
        "`<EDUGRAPH_DATA_DIR>/.cache`).",
    ),
    Setting(
        "EDUGRAPH_CONTENT_SOURCE",
        "sample",
        "Worksheet content: `sample` (the bundled generator), a folder, a folder of `*.tar.gz` releases, a "
        "`.tar.gz` path or https URL, a git remote (`git+<url>` / `*.git`) whose vX.Y.Z[-NN] tags are releases, or a "
        "Hub dataset `hf://datasets/<namespace>/<name>[@<revision>]` (without a revision its vX.Y.Z[-NN] tags are "
        "releases). A vX.Y.Z-NN release is built for, and only labelled against, ontology release vX.Y.Z.",
    ),
    Setting(
        "EDUGRAPH_CONTENT_LABEL_FIELD",
        "auto",
        "Label field of a content release's `metadata.jsonl` rows: `auto` (the one every row of the release uses), "
        "`labels` (upstream since v0.22.2-01) or `tags` (older releases).",
    ),
    Setting(
        "EDUGRAPH_CONTENT_STRICT",
        "",
        "`true`: a content release with any problem (a path twice in a split, a missing image, identical bytes across "
        "splits, a malformed row, an unknown, dimensionless or organizational label) fails with a report and nothing "
        "is published; `false`: such items are skipped and counted; unset: strict for Hub, git and archive releases, "
        "lenient for `sample` and a plain folder.",
    ),
    Setting("EDUGRAPH_SAMPLE_COUNT", "200", "Images generated when the content source is `sample`."),
    Setting("EDUGRAPH_SAMPLE_SEED", "0", "Seed of the sample worksheet generator."),
    Setting(
        "EDUGRAPH_MODEL",
        "tiny",
        "Model profile: `tiny` (CPU, offline), `2b`, `4b`, `8b` (Qwen/Qwen3-VL-{N}B-Instruct), `qwen3.5-4b`, "
        "`qwen3.5-9b`, `qwen3.5-27b` (Qwen/Qwen3.5-{N}B).",
    ),
    Setting("EDUGRAPH_BASE_MODEL", "", "Hub repo id or local folder replacing the profile's base model."),
    Setting("EDUGRAPH_RUN_MODE", "train", "`train`, or `test` (a small subset, one epoch: checks the path, not quality)."),
    Setting(
        "EDUGRAPH_KNOWLEDGE_ADAPTER",
        "",
        "Stage 1 for `trained_adapter`: empty uses the `knowledge_adapter` asset, `none` skips stage 1, a path "
        "reuses that PEFT adapter.",
    ),
    Setting(
        "EDUGRAPH_DEVICE",
        "auto",
        "Training device: `auto` (CUDA; only `tiny` may fall back to the CPU), `cuda` (fail without it), `cpu` "
        "(any profile on the CPU, fp32: tests). On CUDA precision (bf16 LoRA or QLoRA), micro-batch and gradient "
        "checkpointing follow from the card's memory (`EDUGRAPH_TRAINING_PLACEMENT` overrides).",
    ),
    Setting(
        "EDUGRAPH_LORA_TARGETS",
        "",
        "Stage-2 LoRA targets: `language` (language model only; vision tower and projector frozen, the GGUF's "
        "`mmproj` equals the base's) or `all-linear` (also the vision tower and projector); empty: the profile's.",
    ),
    Setting(
        "EDUGRAPH_TRAINING_PLACEMENT",
        "",
        "Override of the GPU memory placement, comma-separated: `precision=bf16` or `precision=nf4`, `micro_batch=N` (dividing "
        "the effective batch), `gradient_checkpointing=on` or `off`; empty: decided from the card's memory.",
    ),
    Setting(
        "EDUGRAPH_CHECKPOINT_MINUTES",
        "10",
        "Training step: also save a checkpoint when this many minutes passed since the last one (besides every "
        "`save_steps`; fractions allowed; 0: off).",
    ),
    Setting(
        "EDUGRAPH_TRAINING_LAUNCHER",
        "local",
        "Where training runs: `local` (subprocess), `docker`, `gcp` (a Compute Engine VM), `vertex` (a Vertex AI CustomJob).",
    ),
    Setting("EDUGRAPH_TRAINING_IMAGE", "edugraph-trainer:latest", "Training image for the docker, gcp and vertex launchers."),
    Setting("EDUGRAPH_DOCKER_GPUS", "true", "docker launcher: request all GPUs."),
    Setting("EDUGRAPH_DOCKER_NETWORK", "", "docker launcher: container network mode (engine default)."),
    Setting("EDUGRAPH_DOCKER_USER", "", "docker launcher: `uid:gid` the container runs as (image default)."),
    Setting("EDUGRAPH_GCP_PROJECT", "", "gcp launcher: Google Cloud project (required for gcp)."),
    Setting("EDUGRAPH_GCS_BUCKET", "", "gcp launcher: bucket for staged data, results and Pipes messages (required)."),
    Setting("EDUGRAPH_GCS_PREFIX", "edugraph", "gcp launcher: folder inside the bucket."),
    Setting("EDUGRAPH_GCP_ZONE", "us-central1-a", "gcp launcher: zone of the training VM (when `EDUGRAPH_GCP_ZONES` is unset)."),
    Setting(
        "EDUGRAPH_GCP_ZONES",
        "",
        "gcp launcher: comma-separated zones, first preferred; no capacity or quota in one moves to the next.",
    ),
    Setting(
        "EDUGRAPH_GCP_MAX_PREEMPTIONS",
        "5",
        "gcp/vertex launchers: preemptions a training step survives (a new machine resumes from the GCS checkpoint; at most 20).",
    ),
    Setting(
        "EDUGRAPH_GCP_ON_DEMAND_AFTER",
        "",
        "gcp/vertex launchers: after this many preemptions the next machine is on-demand (unset: always spot).",
    ),
    Setting("EDUGRAPH_GCP_MACHINE_TYPE", "g2-standard-8", "gcp launcher: machine type."),
    Setting(
        "EDUGRAPH_GCP_ACCELERATOR",
        "nvidia-l4",
        "gcp/vertex launchers: GPU type, one with bf16 (L4, A100, H100, H200, B200: `cloud/accelerators.py`); "
        "T4/V100/P100/P4/K80 are refused.",
    ),
    Setting("EDUGRAPH_GCP_ACCELERATOR_COUNT", "1", "gcp launcher: GPUs per VM."),
    Setting(
        "EDUGRAPH_GCP_VM_IMAGE",
        "projects/cos-cloud/global/images/cos-125-19216-532-123",
        "gcp launcher: boot image, a pinned Container-Optimized OS image (not a family: it moves); moved together with "
        "`EDUGRAPH_GCP_GPU_DRIVER_VERSION` (docs/training-launchers.md, Moving the pins).",
    ),
    Setting(
        "EDUGRAPH_GCP_GPU_DRIVER_VERSION",
        "580.126.09",
        "gcp launcher: NVIDIA driver `cos-extensions install gpu` installs on the VM image: a version (>= 580 for CUDA "
        "13.0), a branch (`R580`) or `default`/`latest` (both move).",
    ),
    Setting("EDUGRAPH_GCP_BOOT_DISK_GB", "100", "gcp launcher: boot disk size."),
    Setting("EDUGRAPH_GCP_SERVICE_ACCOUNT", "", "gcp launcher: VM service account (project default)."),
    Setting("EDUGRAPH_GCP_NETWORK", "global/networks/default", "gcp launcher: VPC network."),
    Setting("EDUGRAPH_GCP_SUBNETWORK", "", "gcp launcher: subnetwork."),
    Setting("EDUGRAPH_GCP_SPOT", "true", "gcp launcher: spot provisioning (deleted on preemption)."),
    Setting("EDUGRAPH_GCP_MAX_RUN_HOURS", "24", "gcp launcher: the VM deletes itself after this long."),
    Setting(
        "EDUGRAPH_GCP_HF_TOKEN_SECRET",
        "",
        "gcp launcher: Secret Manager version holding the HF token (the VM reads it; the value never leaves GCP).",
    ),
    Setting("EDUGRAPH_GCP_COMPUTE_ENDPOINT", "", "gcp launcher: Compute Engine API endpoint override (tests)."),
    Setting("EDUGRAPH_VERTEX_REGION", "us-central1", "vertex launcher: region of the CustomJob (the bucket should be there)."),
    Setting("EDUGRAPH_VERTEX_ENDPOINT", "", "vertex launcher: Vertex AI API endpoint override (tests)."),
    Setting(
        "EDUGRAPH_CHECKPOINT_SYNC",
        "",
        "Training step: `gs://<bucket>/<folder>` its checkpoints are restored from and synced to (the gcp/vertex "
        "launchers' in-machine wrapper sets it; unset: checkpoints stay on the local disk).",
    ),
    Setting(
        "EDUGRAPH_BASE_SYNC",
        "",
        "Training step: `gs://<bucket>/<folder>` where it keeps the base model's Hub snapshot and the stage-1-merged "
        "base for the next machine of its job (the gcp/vertex launchers' in-machine wrapper sets it; unset: each "
        "machine downloads and merges them itself).",
    ),
    Setting("EDUGRAPH_HF_REPO", "", "Hub model repository `namespace/name` to publish to (unset: publication is skipped)."),
    Setting("EDUGRAPH_HF_KNOWLEDGE_REPO", "", "Hub dataset repository for the knowledge dataset (default `<namespace>/edugraph-knowledge`)."),
    Setting("EDUGRAPH_HF_WORKSHEETS_REPO", "", "Hub dataset repository for the worksheet dataset (default `<namespace>/edugraph-worksheets`)."),
    Setting("EDUGRAPH_HF_PRIVATE", "false", "Create the Hub repositories as private."),
    Setting(
        "HF_TOKEN",
        "",
        "Hugging Face write token (never logged or stored in metadata; when unset, huggingface_hub's older "
        "`HUGGING_FACE_HUB_TOKEN` is used).",
        secret=True,
    ),
    Setting("HF_ENDPOINT", "https://huggingface.co", "Hub endpoint (the standard huggingface_hub variable)."),
    Setting("EDUGRAPH_GGUF_QUANT", "Q4_K_M", "Quantization of `gguf_model` (`Q4_K_M`, `Q8_0`, ...)."),
    Setting(
        "EDUGRAPH_LLAMA_CPP_DIR",
        "",
        "llama.cpp build used for GGUF (default `~/.cache/edugraph/llama.cpp/<version>`; `scripts/build-llama-cpp.sh`).",
    ),
    Setting(
        "EDUGRAPH_LLAMA_CPP_VERSION",
        LLAMA_CPP_PYTHON_VERSION,
        "llama-cpp-python sdist whose llama.cpp is built and used (names the default build folder).",
    ),
    Setting("EDUGRAPH_GGUF_THREADS", "", "llama.cpp threads for GGUF inference (default: half the CPUs)."),
    Setting(
        "EDUGRAPH_SERVE_ANSWER_FORMAT",
        "legacy",
        "`edugraph serve`: answer contract of chat completions whose request names none: `legacy` "
        "(`{Area, Scope, Ability}`) or `v3` (`{areas, scopes, abilities}`); `--answer-format`.",
    ),
    Setting("EDUGRAPH_SERVE_MAX_BATCH", "8", "`edugraph serve`: images per model batch (`--max-batch`)."),
    Setting(
        "EDUGRAPH_SERVE_BATCH_WINDOW_MS", "10", "`edugraph serve`: how long a batch waits for more requests, ms."
    ),
    Setting("EDUGRAPH_SERVE_MAX_FILES", "16", "`edugraph serve`: images per `/v1/classify` request."),
    Setting("EDUGRAPH_SERVE_MAX_REQUEST_MB", "32", "`edugraph serve`: request body cap, MiB (an image at most 16)."),
    Setting(
        "EDUGRAPH_SERVE_MAX_PIXELS", "16777216", "`edugraph serve`: pixels per image, checked before decoding."
    ),
    Setting("EDUGRAPH_SERVE_TIMEOUT", "60", "`edugraph serve`: per-request timeout in seconds (upload and answer)."),
    Setting("EDUGRAPH_CODE_VERSION", "", "Code version recorded in lineage and model cards (default: the git commit)."),
)


def _named(name: str) -> Setting:
    for item in SETTINGS:
        if item.name == name:
            return item
    raise KeyError(f"unknown setting {name!r}")


def setting(name: str) -> str:
    """The variable's value, or its setting's default when it is unset or empty."""
    return _named(name).read()


def default(name: str) -> str:
    """The setting's default (what an unset variable means), for help texts."""
    return _named(name).default


def is_set(name: str) -> bool:
    """Whether the setting's variable is set to a value (then a resource binds ``dg.EnvVar(name)``)."""
    return bool(os.environ.get(_named(name).name, ""))


def integer(name: str) -> int:
    return int(_typed(name, int, "an integer"))


def optional_integer(name: str) -> int | None:
    """`integer`, or None for a setting that is unset and has no default."""
    return integer(name) if setting(name).strip() else None


def number(name: str) -> float:
    return float(_typed(name, float, "a number"))


def flag(name: str, value: str | None = None) -> bool:
    """The setting as a boolean: `value` when given (a resource field bound to ``dg.EnvVar(name)``, resolved by
    Dagster), else the environment; empty means the setting's default. The one boolean parser of the pipeline."""
    raw = (setting(name) if value is None else value.strip() or default(name)).strip().lower()
    if raw not in _TRUE + _FALSE:
        raise ValueError(f"{name}={raw!r}: expected one of {', '.join(_TRUE + _FALSE)}")
    return raw in _TRUE


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _typed(name: str, kind: type, expected: str):
    value = setting(name)
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected {expected}") from None


def chosen(field: str, given: str, name: str) -> tuple[str, str]:
    """A run config field that falls back to a setting: (value, where it came from). `given` when it is not empty
    (where: ``config field '<field>'``), else the setting `name` (where: `name`). The one place a run config's
    "empty takes its environment variable" is resolved, so messages can name the source of a bad value."""
    given = given.strip()
    if given:
        return given, f"config field {field!r}"
    return setting(name).strip(), name


def hub_token_variable() -> str | None:
    """The variable holding the Hugging Face token: ``HF_TOKEN``, else huggingface_hub's older
    ``HUGGING_FACE_HUB_TOKEN``; None when neither is set."""
    if is_set("HF_TOKEN"):
        return "HF_TOKEN"
    return LEGACY_HUB_TOKEN_VARIABLE if other_tool(LEGACY_HUB_TOKEN_VARIABLE) else None


def hub_token() -> str | None:
    """The Hugging Face token (`hub_token_variable`'s value), or None."""
    name = hub_token_variable()
    return os.environ.get(name) if name else None


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (1, ON, YES or TRUE)."""
    return other_tool("HF_HUB_OFFLINE").strip().upper() in ("1", "ON", "YES", "TRUE")


def user_cache_home() -> Path:
    """``XDG_CACHE_HOME``, else ``~/.cache``: where per-user caches (the llama.cpp build, store mirrors) live."""
    return Path(other_tool("XDG_CACHE_HOME") or Path.home() / ".cache")


def url_scheme(location: str | os.PathLike) -> str | None:
    """`gs` for ``gs://...``; None for a local path. Also catches ``gs:/x`` (a URL a Path has collapsed)."""
    text = os.fspath(location)
    scheme, sep, _ = text.partition(":")
    if sep and len(scheme) > 1 and scheme.isalnum() and text[len(scheme) + 1 :].startswith("/"):
        return scheme.lower()
    return None


def data_location() -> str:
    """`EDUGRAPH_DATA_DIR` as `storage.open_store` takes it: an object store URL as given, a folder resolved."""
    value = setting("EDUGRAPH_DATA_DIR")
    return value if url_scheme(value) else str(Path(value).expanduser().resolve())


def data_dir() -> Path:
    """`EDUGRAPH_DATA_DIR` as a local folder; a gs:// store has none (a Path would make it a folder named `gs:`)."""
    location = data_location()
    if url_scheme(location):
        raise ValueError(
            f"EDUGRAPH_DATA_DIR={location} is an object store, not a folder: open it with "
            "storage.open_store(settings.data_location())"
        )
    return Path(location)


def cache_dir() -> Path:
    return cache_dir_for(data_location(), setting("EDUGRAPH_CACHE_DIR"))


def cache_dir_for(location: str, configured: str = "") -> Path:
    """The cache dir of the data store at `location`: `configured` when given, else ``<location>/.cache`` for a
    folder, or the per-user mirror of an object store (`store_cache_dir`)."""
    if configured:
        return Path(configured).expanduser().resolve()
    return store_cache_dir(location) if url_scheme(location) else Path(location) / ".cache"


def store_cache_dir(location: str) -> Path:
    """The local cache of an object store when `EDUGRAPH_CACHE_DIR` is unset: per user, per bucket and prefix."""
    base = user_cache_home() / "edugraph" / "stores"
    return base / location.split("://", 1)[1].strip("/")


def other_tool(name: str) -> str:
    """A variable another tool owns (``STORAGE_EMULATOR_HOST``, ``XDG_CACHE_HOME``, ``HF_HUB_OFFLINE``, ``PORT``,
    Dagster Pipes' bootstrap variables): read here, so this module stays the one reader of the environment."""
    return os.environ.get(name, "")


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment a child process (git, llama.cpp, the training step) starts with: this process's, plus
    `overrides`."""
    return {**os.environ, **overrides}


def describe_settings() -> str:
    """The README's configuration table, as Markdown."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for item in SETTINGS:
        default = "(secret, unset)" if item.secret else f"`{item.default}`" if item.default else "(unset)"
        rows.append(f"| `{item.name}` | {default} | {item.help} |")
    return "\n".join(rows)


def load_dotenv(path: str = ".env") -> None:
    """Read a `.env` file (as upstream users keep one) without overriding variables already set."""
    from dotenv import load_dotenv as _load

    _load(path, override=False)
