"""The answer format the model is trained on and production parses: upstream's labelling JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from edugraph_pipeline.ontology.model import DIMENSIONS

UNSUPPORTED_MATERIAL = {"Error": "UnsupportedMaterial"}


def format_answer(labels: Mapping[str, Iterable[str]]) -> str:
    """``{"Area": [...], "Scope": [...], "Ability": [...]}`` with every dimension present and names sorted."""
    unknown = set(labels) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown label dimension(s) {sorted(unknown)}; expected {list(DIMENSIONS)}")
    return json.dumps({dimension: sorted(set(labels.get(dimension, ()))) for dimension in DIMENSIONS})


def format_unsupported() -> str:
    return json.dumps(UNSUPPORTED_MATERIAL)
