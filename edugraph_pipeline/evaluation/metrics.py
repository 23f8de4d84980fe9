"""Metrics of the labeller on (expected answer, model text) pairs, the trivial baseline, and the gate.

Conventions (every number is a plain float/int so the report is JSON-serialisable):

* ``json_valid_rate``: share of model texts that are a JSON object as they stand (no repair);
  ``parseable_rate``: share from which repair recovered an object (or a bare refusal);
  ``labels_valid_rate``: share whose labels all exist in the ontology under the right dimension and need no
  remapping (a refusal counts as valid); ``clean_rate``: both of the above and nothing else to fix.
* ``exact_match``: the *repaired* answer (what production serves) equals the expected one, over all items.
* Label metrics (per dimension, micro and macro P/R/F1, per-label scores, confusion) are computed over the items
  whose expected answer is a worksheet (not a refusal); a predicted refusal there has no labels. Macro averages
  run over every label that is expected or predicted at least once (sklearn's convention); 0/0 counts as 0.
* ``refusal_accuracy``: share of unsupported-material items answered with the refusal;
  ``false_refusal_rate``: share of worksheet items answered with the refusal. ``None`` when no such item exists.
* ``baseline``: the most frequent answer of the train split (`most_frequent_answer`) for every item;
  ``baselines``: every baseline scored on the same items, by name (`baselines.py`: most frequent, nearest
  neighbour). The gate's baseline margin is taken against the strongest of them (`strongest_baseline`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from edugraph_pipeline.inference.answers import (
    DEFAULT_FUZZY_CUTOFF,
    LabelResolver,
    ParsedAnswer,
    parse_answer,
    parse_expected,
)
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology

NONE_SET = "(none)"
OTHER_SET = "(other)"


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else 0.0


def _maybe_ratio(num: float, den: float) -> float | None:
    return float(num) / den if den else None


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1


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


def most_frequent_answer(train_labels: Iterable[str]) -> str:
    """The most frequent expected answer of the train split (ties: the smallest string), normalised."""
    counts = Counter(json.dumps(parse_expected(text)) for text in train_labels)
    if not counts:
        raise ValueError("no train labels: cannot build the most-frequent baseline")
    best = max(counts.values())
    winner = min(text for text, count in counts.items() if count == best)
    return json.dumps(json.loads(winner))


def _set_name(labels: Sequence[str]) -> str:
    return "+".join(sorted(labels)) if labels else NONE_SET


def _confusion(dimension: str, pairs: list[tuple[str, str]], top: int) -> Confusion:
    frequent = [name for name, _ in sorted(Counter(e for e, _ in pairs).items(), key=lambda kv: (-kv[1], kv[0]))]
    labels = frequent[:top]
    needs_other = len(frequent) > top or any(p not in labels for _, p in pairs)
    if needs_other:
        labels = labels + [OTHER_SET]
    index = {name: i for i, name in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for expected, predicted in pairs:
        row = index.get(expected, index.get(OTHER_SET))
        col = index.get(predicted, index.get(OTHER_SET))
        matrix[row][col] += 1
    return Confusion(dimension=dimension, labels=labels, matrix=matrix)


def evaluate_predictions(
    expected: Sequence[str],
    predicted_raw: Sequence[str],
    ontology: Ontology,
    baseline_answer: str | None = None,
    *,
    confusion_top: int = 8,
    max_examples: int = 10,
    fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF,
) -> EvaluationReport:
    """The report of one model on one split; with `baseline_answer`, also the baseline's report (``.baseline``).

    `expected`: the dataset's ``labels`` strings; `predicted_raw`: the model's texts, same order.
    `fuzzy_cutoff`: close-match remapping during repair, by default the classifier's, so that the scores are
    those of what production serves (remapped labels still count against ``labels_valid_rate``).
    """
    if len(expected) != len(predicted_raw):
        raise ValueError(f"{len(expected)} expected answers but {len(predicted_raw)} predictions")
    resolver = LabelResolver(ontology, fuzzy_cutoff)
    parsed = [parse_answer(raw, ontology, resolver=resolver) for raw in predicted_raw]
    report = _score(list(expected), parsed, confusion_top=confusion_top, max_examples=max_examples)
    if baseline_answer is not None:
        base_parsed = parse_answer(baseline_answer, ontology, resolver=resolver)
        baseline = _score(list(expected), [replace(base_parsed) for _ in expected], confusion_top, max_examples)
        report.baseline_answer = base_parsed.text
        report.baseline = baseline
    return report


def _score(
    expected_texts: list[str], parsed: list[ParsedAnswer], confusion_top: int, max_examples: int
) -> EvaluationReport:
    n = len(expected_texts)
    expected = [parse_expected(text) for text in expected_texts]
    is_unsupported = [e == UNSUPPORTED_MATERIAL for e in expected]
    n_unsupported = sum(is_unsupported)
    n_worksheets = n - n_unsupported

    json_valid = sum(p.parsed_ok for p in parsed)
    parseable = sum(p.found_object or p.unsupported for p in parsed)
    repaired = sum(p.repaired for p in parsed)
    labels_valid = sum(not p.unknown and not p.remapped and not p.moved for p in parsed)
    clean = sum(p.clean for p in parsed)
    exact = [p.answer == e for p, e in zip(parsed, expected)]

    refused = [p.unsupported for p in parsed]
    refusal_hits = sum(r and u for r, u in zip(refused, is_unsupported))
    false_refusals = sum(r and not u for r, u in zip(refused, is_unsupported))
    refusal_confusion = {
        "worksheet": {"labels": n_worksheets - false_refusals, "refusal": false_refusals},
        "unsupported": {"labels": n_unsupported - refusal_hits, "refusal": refusal_hits},
    }

    per_label: list[LabelScore] = []
    dimensions: dict[str, DimensionScores] = {}
    confusion: dict[str, Confusion] = {}
    worksheet_items = [(e, p) for e, p, u in zip(expected, parsed, is_unsupported) if not u]
    for d in DIMENSIONS:
        tp: Counter = Counter()
        fp: Counter = Counter()
        fn: Counter = Counter()
        support: Counter = Counter()
        predicted_count: Counter = Counter()
        set_hits = 0
        pairs: list[tuple[str, str]] = []
        for e, p in worksheet_items:
            gold = set(e[d])
            pred = set(p.labels[d])
            set_hits += gold == pred
            pairs.append((_set_name(sorted(gold)), _set_name(sorted(pred))))
            for label in gold:
                support[label] += 1
            for label in pred:
                predicted_count[label] += 1
            for label in gold & pred:
                tp[label] += 1
            for label in pred - gold:
                fp[label] += 1
            for label in gold - pred:
                fn[label] += 1
        labels = sorted(set(support) | set(predicted_count))
        scores = []
        for label in labels:
            precision, recall, f1 = _prf(tp[label], fp[label], fn[label])
            score = LabelScore(
                dimension=d,
                label=label,
                support=support[label],
                predicted=predicted_count[label],
                tp=tp[label],
                fp=fp[label],
                fn=fn[label],
                precision=precision,
                recall=recall,
                f1=f1,
            )
            scores.append(score)
        per_label.extend(sorted(scores, key=lambda s: (-s.support, s.label)))
        micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
        k = len(scores)
        dimensions[d] = DimensionScores(
            dimension=d,
            micro_precision=micro[0],
            micro_recall=micro[1],
            micro_f1=micro[2],
            macro_precision=_ratio(sum(s.precision for s in scores), k),
            macro_recall=_ratio(sum(s.recall for s in scores), k),
            macro_f1=_ratio(sum(s.f1 for s in scores), k),
            set_accuracy=_ratio(set_hits, len(worksheet_items)),
            n_labels=k,
        )
        confusion[d] = _confusion(d, pairs, confusion_top)

    unknown = Counter(label for p in parsed for label in p.unknown)
    remapped = Counter(f"{src} -> {dst}" for p in parsed for src, dst in p.remapped.items())
    examples = []
    for e_text, p, ok in zip(expected_texts, parsed, exact):
        if not ok and len(examples) < max_examples:
            examples.append({"expected": e_text, "answer": p.text, "raw": p.raw[:500]})
    return EvaluationReport(
        n=n,
        n_worksheets=n_worksheets,
        n_unsupported=n_unsupported,
        json_valid_rate=_ratio(json_valid, n),
        parseable_rate=_ratio(parseable, n),
        repaired_rate=_ratio(repaired, n),
        labels_valid_rate=_ratio(labels_valid, n),
        clean_rate=_ratio(clean, n),
        exact_match=_ratio(sum(exact), n),
        exact_match_worksheets=_ratio(sum(x for x, u in zip(exact, is_unsupported) if not u), n_worksheets),
        refusal_accuracy=_maybe_ratio(refusal_hits, n_unsupported),
        false_refusal_rate=_maybe_ratio(false_refusals, n_worksheets),
        refusal_precision=_maybe_ratio(refusal_hits, sum(refused)),
        dimensions=dimensions,
        per_label=per_label,
        confusion=confusion,
        refusal_confusion=refusal_confusion,
        unknown_labels=dict(unknown.most_common()),
        remapped_labels=dict(remapped.most_common()),
        moved_labels=sum(len(p.moved) for p in parsed),
        examples=examples,
    )


# ---------------------------------------------------------------------------------------------------------------
# The gate
# ---------------------------------------------------------------------------------------------------------------


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

    `thresholds`: a `GateThresholds`, a profile name (``"production"``, ``"tiny"``) or a mapping of overrides
    of the production profile; None: production.
    """
    if thresholds is None:
        thresholds = GATE_PROFILES["production"]
    elif isinstance(thresholds, str):
        thresholds = gate_thresholds(thresholds)
    elif not isinstance(thresholds, GateThresholds):
        thresholds = gate_thresholds("production", thresholds)
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
