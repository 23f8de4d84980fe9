"""The evaluation report: what one model (or baseline) scored on one split, its headline summary and JSON form, and
which of its attached baselines a margin is taken against.

Every number is a plain float/int so the report is JSON-serialisable; `metrics.evaluate_predictions` fills it in
(its docstring states what each rate counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace

from edugraph_pipeline.ontology.model import DIMENSIONS


@dataclass
class LabelScore:
    dimension: str
    label: str
    support: int  # expected occurrences
    predicted: int  # predicted occurrences
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float


@dataclass
class DimensionScores:
    dimension: str
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    set_accuracy: float  # share of worksheet items whose label set in this dimension is exactly right
    n_labels: int  # labels expected or predicted at least once


@dataclass
class Confusion:
    """Rows: expected label set; columns: predicted label set (both ``+``-joined; the top sets, rest OTHER_SET)."""

    dimension: str
    labels: list[str]
    matrix: list[list[int]]


@dataclass
class EvaluationReport:
    n: int
    n_worksheets: int
    n_unsupported: int
    json_valid_rate: float
    parseable_rate: float
    repaired_rate: float
    labels_valid_rate: float
    clean_rate: float
    exact_match: float
    exact_match_worksheets: float
    refusal_accuracy: float | None
    false_refusal_rate: float | None
    refusal_precision: float | None
    dimensions: dict[str, DimensionScores]
    per_label: list[LabelScore]
    confusion: dict[str, Confusion]
    refusal_confusion: dict[str, dict[str, int]]  # expected kind -> predicted kind -> count
    unknown_labels: dict[str, int]  # dropped model labels and how often
    remapped_labels: dict[str, int]  # "model label -> name" and how often
    moved_labels: int  # labels the model filed under a wrong dimension (total)
    examples: list[dict]  # a few wrong answers: expected, answer, raw
    baseline_answer: str | None = None
    baseline: EvaluationReport | None = None
    baselines: dict[str, EvaluationReport] = field(default_factory=dict)

    # ---- derived views ----------------------------------------------------------------------------------------
    @property
    def micro_f1_mean(self) -> float:
        return sum(self.dimensions[d].micro_f1 for d in DIMENSIONS) / len(DIMENSIONS)

    @property
    def macro_f1_mean(self) -> float:
        return sum(self.dimensions[d].macro_f1 for d in DIMENSIONS) / len(DIMENSIONS)

    def summary(self) -> dict[str, float | int | None]:
        """Flat headline numbers (for Dagster metadata / logs); baseline numbers prefixed ``baseline_``."""
        out: dict[str, float | int | None] = {
            "n": self.n,
            "n_worksheets": self.n_worksheets,
            "n_unsupported": self.n_unsupported,
            "json_valid_rate": self.json_valid_rate,
            "parseable_rate": self.parseable_rate,
            "labels_valid_rate": self.labels_valid_rate,
            "clean_rate": self.clean_rate,
            "exact_match": self.exact_match,
            "refusal_accuracy": self.refusal_accuracy,
            "false_refusal_rate": self.false_refusal_rate,
            "micro_f1_mean": self.micro_f1_mean,
            "macro_f1_mean": self.macro_f1_mean,
        }
        for d in DIMENSIONS:
            out[f"{d.lower()}_micro_f1"] = self.dimensions[d].micro_f1
            out[f"{d.lower()}_macro_f1"] = self.dimensions[d].macro_f1
        if self.baseline is not None:
            for key, value in self.baseline.summary().items():
                if not key.startswith("n"):
                    out[f"baseline_{key}"] = value
        for name, report in self.baselines.items():
            out[f"baseline_{name}_exact_match"] = report.exact_match
            out[f"baseline_{name}_micro_f1_mean"] = report.micro_f1_mean
            for d in DIMENSIONS:
                out[f"baseline_{name}_{d.lower()}_micro_f1"] = report.dimensions[d].micro_f1
        return out

    def to_json(self) -> dict:
        data = asdict(self)
        data["micro_f1_mean"] = self.micro_f1_mean
        data["macro_f1_mean"] = self.macro_f1_mean
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_json()
        data["baselines"] = {name: report.to_json() for name, report in self.baselines.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> EvaluationReport:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["dimensions"] = {d: DimensionScores(**s) for d, s in data["dimensions"].items()}
        data["per_label"] = [LabelScore(**s) for s in data["per_label"]]
        data["confusion"] = {d: Confusion(**c) for d, c in data["confusion"].items()}
        if data.get("baseline") is not None:
            data["baseline"] = cls.from_json(data["baseline"])
        data["baselines"] = {name: cls.from_json(report) for name, report in (data.get("baselines") or {}).items()}
        return cls(**data)

    def with_baselines(self, reports: Mapping[str, EvaluationReport]) -> EvaluationReport:
        """This report with `reports` (baseline name -> its report on the same items) attached."""
        return replace(self, baselines=dict(reports))


MOST_FREQUENT_BASELINE = "most_frequent"  # the name `baselines.py` gives the most-frequent-answer baseline
STRONGEST = "strongest"


def strongest_baseline(report: EvaluationReport, name: str = STRONGEST) -> tuple[str, EvaluationReport] | None:
    """The baseline a margin is taken against: `name`, or the one of highest mean micro-F1 (``"strongest"``;
    ties: the first attached). Candidates are ``report.baselines`` plus ``report.baseline`` as the most frequent;
    None when the report has no baseline."""
    candidates = dict(report.baselines)
    if report.baseline is not None:
        candidates.setdefault(MOST_FREQUENT_BASELINE, report.baseline)
    if not candidates:
        return None
    if name != STRONGEST:
        if name not in candidates:
            raise ValueError(f"the gate's margin baseline {name!r} is not in the report (it has {sorted(candidates)})")
        return name, candidates[name]
    best = strongest(candidates)
    return best, candidates[best]


def strongest(reports: Mapping[str, EvaluationReport]) -> str:
    """The name of the report with the highest mean micro-F1 over the dimensions (ties: the first)."""
    return max(reports, key=lambda name: reports[name].micro_f1_mean)

