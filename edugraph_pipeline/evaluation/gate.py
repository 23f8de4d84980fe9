"""The publication gate: the thresholds a model's evaluation report must meet (per profile), the checks they make,
and whether a model may be published (`model_evaluation` evaluated exactly this model, and it passed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from edugraph_pipeline.evaluation.report import MOST_FREQUENT_BASELINE, STRONGEST, EvaluationReport, strongest_baseline
from edugraph_pipeline.storage import ArtifactStore, layout


@dataclass(frozen=True)
class GateThresholds:
    """Minimums (and one maximum) a model must reach to be published; ``None`` disables a check."""

    min_json_valid_rate: float | None = 0.95
    min_labels_valid_rate: float | None = 0.95
    min_exact_match: float | None = 0.30
    min_macro_f1: Mapping[str, float] | None = field(
        default_factory=lambda: {"Area": 0.50, "Scope": 0.40, "Ability": 0.40}
    )
    min_micro_f1: Mapping[str, float] | None = field(
        default_factory=lambda: {"Area": 0.60, "Scope": 0.50, "Ability": 0.50}
    )
    min_refusal_accuracy: float | None = 0.90
    max_false_refusal_rate: float | None = 0.05
    # the model's mean micro F1 over the dimensions must exceed the baseline's by this much
    min_baseline_margin: float | None = 0.10
    # which baseline: "strongest" (of those in the report: the nearest neighbour on real content) or a name
    margin_baseline: str = STRONGEST
    min_items: int = 1

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("min_macro_f1", "min_micro_f1"):
            if data[key] is not None:
                data[key] = dict(data[key])
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> GateThresholds:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown gate threshold(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**dict(data))


GATE_PROFILES: dict[str, GateThresholds] = {
    "production": GateThresholds(),
    # The tiny CPU model checks the pipeline's mechanics, not quality: it must answer in the format
    # (mostly valid JSON of known labels) and must not be worse than always answering the most frequent set.
    # Its margin is not taken against the nearest neighbour: on our sample kinds that pixel lookup reaches mean
    # micro-F1 0.74 (200 images, seed 0), which a smoke-sized CPU run is not meant to beat.
    "tiny": GateThresholds(
        min_json_valid_rate=0.80,
        min_labels_valid_rate=0.80,
        min_exact_match=None,
        min_macro_f1=None,
        min_micro_f1=None,
        min_refusal_accuracy=None,
        max_false_refusal_rate=None,
        min_baseline_margin=0.0,
        margin_baseline=MOST_FREQUENT_BASELINE,
    ),
}


def gate_thresholds(profile: str = "production", overrides: Mapping | None = None) -> GateThresholds:
    """A profile's thresholds with some replaced (e.g. from Dagster config)."""
    if profile not in GATE_PROFILES:
        raise ValueError(f"unknown gate profile {profile!r}; known: {sorted(GATE_PROFILES)}")
    base = GATE_PROFILES[profile]
    if not overrides:
        return base
    return GateThresholds.from_json({**base.to_json(), **dict(overrides)})


def resolve_thresholds(thresholds: GateThresholds | str | Mapping | None) -> GateThresholds:
    """`thresholds` as a `GateThresholds`: one as it is, a profile name (``"production"``, ``"tiny"``), a mapping
    of overrides of the production profile, or None or empty (production)."""
    if not thresholds:
        return GATE_PROFILES["production"]
    if isinstance(thresholds, str):
        return gate_thresholds(thresholds)
    if isinstance(thresholds, GateThresholds):
        return thresholds
    return gate_thresholds("production", thresholds)


def gate_checks(report: EvaluationReport, thresholds: GateThresholds) -> list[dict]:
    """Every enabled check: ``{"check", "value", "threshold", "passed"}`` (``value`` None: not measurable)."""
    checks: list[dict] = []

    def check(name: str, value: float | None, threshold: float, at_least: bool = True) -> None:
        if value is None:
            # e.g. no unsupported items in the split: the check cannot fail, but is recorded
            checks.append({"check": name, "value": None, "threshold": threshold, "passed": True, "skipped": True})
            return
        passed = value >= threshold - 1e-12 if at_least else value <= threshold + 1e-12
        checks.append({"check": name, "value": value, "threshold": threshold, "passed": passed, "at_least": at_least})

    t = thresholds
    checks.append({"check": "items", "value": report.n, "threshold": t.min_items, "passed": report.n >= t.min_items})
    if t.min_json_valid_rate is not None:
        check("json_valid_rate", report.json_valid_rate, t.min_json_valid_rate)
    if t.min_labels_valid_rate is not None:
        check("labels_valid_rate", report.labels_valid_rate, t.min_labels_valid_rate)
    if t.min_exact_match is not None:
        check("exact_match", report.exact_match, t.min_exact_match)
    for key, attr in (("min_macro_f1", "macro_f1"), ("min_micro_f1", "micro_f1")):
        limits = getattr(t, key)
        if limits:
            for d, limit in limits.items():
                value = getattr(report.dimensions[d], attr) if report.n_worksheets else None
                check(f"{d}.{attr}", value, limit)
    if t.min_refusal_accuracy is not None:
        check("refusal_accuracy", report.refusal_accuracy, t.min_refusal_accuracy)
    if t.max_false_refusal_rate is not None:
        check("false_refusal_rate", report.false_refusal_rate, t.max_false_refusal_rate, at_least=False)
    if t.min_baseline_margin is not None:
        against = strongest_baseline(report, t.margin_baseline)
        if against is None:
            checks.append(
                {"check": "beats_baseline", "value": None, "threshold": t.min_baseline_margin, "passed": False,
                 "reason": "the report has no baseline"}
            )
        else:
            name, baseline = against
            check(f"micro_f1_mean - {name} baseline", report.micro_f1_mean - baseline.micro_f1_mean,
                  t.min_baseline_margin)
            checks[-1]["baseline"] = name
    return checks


def evaluate_gate(
    report: EvaluationReport, thresholds: GateThresholds | str | Mapping | None = None
) -> tuple[bool, list[str]]:
    """``(passed, reasons)``: reasons name every failed check with value and threshold (empty when passed).

    `thresholds`: as `resolve_thresholds` takes them; None: production.
    """
    thresholds = resolve_thresholds(thresholds)
    reasons = []
    for c in gate_checks(report, thresholds):
        if c["passed"]:
            continue
        if "reason" in c:
            reasons.append(f"{c['check']}: {c['reason']}")
        elif c["check"] == "items":
            reasons.append(f"items: {c['value']} evaluated, at least {c['threshold']} needed")
        else:
            relation = ">=" if c.get("at_least", True) else "<="
            reasons.append(f"{c['check']} = {c['value']:.4f}, needs {relation} {c['threshold']:.4f}")
    return not reasons, reasons


# ---------------------------------------------------------------------------------------------------------------
# Publication
# ---------------------------------------------------------------------------------------------------------------


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
