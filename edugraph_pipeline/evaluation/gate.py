"""Whether a model may be published: `model_evaluation` evaluated exactly this model, and it passed."""

from __future__ import annotations

import json

from edugraph_pipeline.storage import ArtifactStore, layout


class PublicationRefused(RuntimeError):
    """The model was not evaluated, or its evaluation gate failed; the message says which and why."""


def passed_evaluation(store: ArtifactStore, version: str) -> dict:
    """`model_evaluation`'s record, if it evaluated exactly the model of content hash `version` and it passed.

    Every publication asks this, whichever run it is in: a blocking check only stops its own run, and a run that
    re-merges a model without evaluating it must not publish on the strength of an older model's pass.
    """
    path = layout.require(layout.model_evaluation(store).record, layout.MODEL_EVALUATION)
    evaluation = json.loads(path.read_text(encoding="utf-8"))
    evaluated = evaluation.get("model_version")
    if evaluated != version:
        raise PublicationRefused(
            f"the merged model {version[:12]} was not evaluated (model_evaluation evaluated "
            f"{str(evaluated)[:12]}), not publishing: materialize model_evaluation again"
        )
    if not evaluation.get("passed"):
        reasons = "; ".join(evaluation.get("reasons") or []) or "no reason recorded"
        tag = evaluation.get("ontology_version")
        raise PublicationRefused(f"model for {tag} failed its evaluation gate, not publishing: {reasons}")
    return evaluation
