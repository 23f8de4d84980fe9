"""Every configuration knob of the pipeline, read from the environment (or a `.env` file).

The table in README.md documents the same names; `describe_settings()` renders it so the two cannot drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

UPSTREAM_ONTOLOGY_REPO = "https://github.com/christian-bick/edugraph-ontology.git"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    secret: bool = False

    def read(self) -> str:
        return os.environ.get(self.name, "") or self.default


SETTINGS: tuple[Setting, ...] = (
    Setting("EDUGRAPH_DATA_DIR", "./out", "Root folder of every artifact (datasets, adapters, models)."),
    Setting(
        "EDUGRAPH_ONTOLOGY_REPO",
        UPSTREAM_ONTOLOGY_REPO,
        "Git remote (URL or local path) whose release tags are ontology releases.",
    ),
    Setting(
        "EDUGRAPH_CACHE_DIR",
        "",
        "Where git mirrors of release remotes are kept (default: `<EDUGRAPH_DATA_DIR>/.cache`).",
    ),
)


def setting(name: str) -> str:
    for item in SETTINGS:
        if item.name == name:
            return item.read()
    raise KeyError(f"unknown setting {name!r}")


def data_dir() -> Path:
    return Path(setting("EDUGRAPH_DATA_DIR")).expanduser().resolve()


def cache_dir() -> Path:
    configured = setting("EDUGRAPH_CACHE_DIR")
    return Path(configured).expanduser().resolve() if configured else data_dir() / ".cache"


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
