"""Scores comparable to upstream's successor classifier (`../shared/upstream/CONTRACTS-2026.md`, "How upstream
evaluates"), for the model and the baselines alike.

An answer is a set of (dimension, label) pairs; the refusal is the one pair ("Error", "UnsupportedMaterial").

* ``exact_set_match``: the output is valid and its set equals the gold set, over all examples (an invalid output
  counts as a miss: only valid outputs can match). Upstream's headline: 72.4 % (181/250).
* ``invalid_output_rate``: share of outputs that are not valid as they stand: strict JSON in the answer format whose
  labels are all concepts of the bound release under their own dimension (and eligible, where the release has
  eligibility), or the refusal; anything repair had to touch is invalid.
* ``incompatible_set_rate``: share of final label sets holding two labels the release says cannot apply together
  (None where the compatibility rule is not given).
* ``micro_precision/recall/f1``: over all (dimension, label) pairs of all examples, on the final labels (what
  production serves, after repair). Upstream's: 96.44 % micro label F1.
* ``mean_example_f1``: the mean over examples of each example's pair F1 (two empty sets: 1).
* ``macro_f1``: the mean over (dimension, label) pairs seen in gold or prediction of each one's F1.
* per dimension: the same restricted to that dimension's pairs (``exact_set_match`` there: the dimension's set).
* slices: ``question`` / ``solution`` views (upstream's solution flag), and training frequency of the gold or
  predicted label: ``unseen`` in train, ``1-4``, ``5+`` (precision counts predicted pairs of the slice, recall gold
  pairs; the refusal is no label and is left out of these).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from edugraph_pipeline.inference.answers import ParsedAnswer, parse_answer, parse_expected
from edugraph_pipeline.inference.label_resolver import DEFAULT_FUZZY_CUTOFF, LabelResolver
from edugraph_pipeline.labels import UNSUPPORTED_MATERIAL
from edugraph_pipeline.ontology.model import DIMENSIONS, Ontology

Pair = tuple[str, str]
REFUSAL: Pair = ("Error", UNSUPPORTED_MATERIAL["Error"])
FREQUENCY_SLICES = ("unseen", "1-4", "5+")
VIEW_SLICES = ("question", "solution")


def answer_pairs(answer: dict) -> frozenset[Pair]:
    """The (dimension, label) pairs of an answer in the upstream format (the refusal: one pair)."""
    if answer == UNSUPPORTED_MATERIAL:
        return frozenset([REFUSAL])
    return frozenset((dimension, label) for dimension in DIMENSIONS for label in answer.get(dimension, ()))


def frequency_slice(count: int) -> str:
    return "unseen" if count == 0 else "1-4" if count < 5 else "5+"


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den else 0.0


def _f1(tp: int, fp: int, fn: int) -> float:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return _ratio(2 * precision * recall, precision + recall)


@dataclass
class SetScores:
    n: int
    exact_set_match: float
    micro_precision: float
    micro_recall: float
    micro_f1: float
    mean_example_f1: float
    macro_f1: float
    invalid_output_rate: float | None = None
    incompatible_set_rate: float | None = None
    exact_set_matches: int = 0


@dataclass
class SliceScores:
    """Precision, recall and F1 over the pairs of one training-frequency slice; `support`: gold pairs in it."""

    support: int
    predicted: int
    precision: float
    recall: float
    f1: float


@dataclass
class ComparableReport:
    overall: SetScores
    dimensions: dict[str, SetScores]
    views: dict[str, SetScores]  # "question", "solution": only the views present
    frequency: dict[str, SliceScores]  # "unseen", "1-4", "5+"
    examples: list[dict] = field(default_factory=list)  # per example: valid, exact, f1 (same order as the input)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Judged:
    """One example as scored: gold and final pairs, whether the output was valid and its set compatible."""

    gold: frozenset[Pair]
    final: frozenset[Pair]
    valid: bool
    compatible: bool | None


def _set_scores(items: Sequence[Judged], keep: Callable[[Pair], bool] | None = None) -> SetScores:
    """Scores over `items`; with `keep`, over the pairs it keeps only (one dimension: no output-level rates)."""
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    example_f1, exact = [], 0
    for item in items:
        gold = {pair for pair in item.gold if keep is None or keep(pair)}
        final = {pair for pair in item.final if keep is None or keep(pair)}
        exact += item.valid and gold == final
        hits = gold & final
        example_f1.append(1.0 if not gold and not final else _f1(len(hits), len(final - gold), len(gold - final)))
        tp.update(hits)
        fp.update(final - gold)
        fn.update(gold - final)
    labels = set(tp) | set(fp) | set(fn)
    micro_tp, micro_fp, micro_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    compat = [item.compatible for item in items if item.compatible is not None]
    return SetScores(
        n=len(items),
        exact_set_match=_ratio(exact, len(items)),
        exact_set_matches=exact,
        micro_precision=_ratio(micro_tp, micro_tp + micro_fp),
        micro_recall=_ratio(micro_tp, micro_tp + micro_fn),
        micro_f1=_f1(micro_tp, micro_fp, micro_fn),
        mean_example_f1=_ratio(sum(example_f1), len(example_f1)),
        macro_f1=_ratio(sum(_f1(tp[label], fp[label], fn[label]) for label in labels), len(labels)),
        invalid_output_rate=None if keep else _ratio(sum(not item.valid for item in items), len(items)),
        incompatible_set_rate=_ratio(sum(not c for c in compat), len(compat)) if compat and not keep else None,
    )


def _frequency_scores(items: Sequence[Judged], train_counts: Counter) -> dict[str, SliceScores]:
    counts = {name: Counter() for name in ("tp", "fp", "fn")}
    for item in items:
        gold, final = item.gold - {REFUSAL}, item.final - {REFUSAL}  # labels only: the refusal is no label
        for pair in gold & final:
            counts["tp"][frequency_slice(train_counts[pair])] += 1
        for pair in final - gold:
            counts["fp"][frequency_slice(train_counts[pair])] += 1
        for pair in gold - final:
            counts["fn"][frequency_slice(train_counts[pair])] += 1
    scores = {}
    for name in FREQUENCY_SLICES:
        tp, fp, fn = counts["tp"][name], counts["fp"][name], counts["fn"][name]
        scores[name] = SliceScores(
            support=tp + fn, predicted=tp + fp, precision=_ratio(tp, tp + fp), recall=_ratio(tp, tp + fn),
            f1=_f1(tp, fp, fn),
        )
    return scores


def train_pair_counts(train_labels: Iterable[str]) -> Counter:
    """How often each (dimension, label) pair is a gold pair in the train split."""
    counts: Counter = Counter()
    for text in train_labels:
        counts.update(answer_pairs(parse_expected(text)))
    return counts


def is_valid(parsed: ParsedAnswer, eligible: Callable[[str], bool] | None = None) -> bool:
    """The output as it stands is a valid answer (see the module docstring)."""
    if not parsed.clean:
        return False
    labels = [label for dimension, label in answer_pairs(parsed.answer) if dimension != REFUSAL[0]]
    return eligible is None or all(eligible(label) for label in labels)


def judge(
    parsed: ParsedAnswer,
    gold_text: str,
    *,
    eligible: Callable[[str], bool] | None = None,
    compatible: Callable[[list[str]], bool] | None = None,
) -> Judged:
    final = answer_pairs(parsed.answer)
    names = [label for dimension, label in final if dimension != REFUSAL[0]]
    return Judged(
        gold=answer_pairs(parse_expected(gold_text)),
        final=final,
        valid=is_valid(parsed, eligible),
        compatible=None if compatible is None or parsed.unsupported else compatible(names),
    )


def score_comparable(
    expected: Sequence[str],
    predicted_raw: Sequence[str],
    ontology: Ontology,
    *,
    views: Sequence[str] | None = None,
    train_counts: Counter | None = None,
    eligible: Callable[[str], bool] | None = None,
    compatible: Callable[[list[str]], bool] | None = None,
    fuzzy_cutoff: float | None = DEFAULT_FUZZY_CUTOFF,
) -> ComparableReport:
    """The comparable report of one predictor on one cohort: `expected` are the dataset's ``labels``,
    `predicted_raw` the predictor's texts (same order), `views` each example's view, `train_counts` the train
    split's `train_pair_counts`; `eligible` (label -> bool) and `compatible` (labels -> bool): the bound release's
    rules, where it has them."""
    if len(expected) != len(predicted_raw):
        raise ValueError(f"{len(expected)} expected answers but {len(predicted_raw)} predictions")
    resolver = LabelResolver(ontology, fuzzy_cutoff)
    parsed = [parse_answer(raw, ontology, resolver=resolver) for raw in predicted_raw]
    items = [judge(p, e, eligible=eligible, compatible=compatible) for p, e in zip(parsed, expected)]
    views = list(views) if views is not None else [""] * len(items)
    by_view = {
        view: _set_scores([item for item, v in zip(items, views) if v == view]) for view in VIEW_SLICES if view in views
    }
    examples = []
    for item in items:
        hits = item.gold & item.final
        f1 = 1.0 if not item.gold and not item.final else _f1(len(hits), len(item.final - item.gold),
                                                              len(item.gold - item.final))
        examples.append({"valid": item.valid, "exact": item.valid and item.gold == item.final, "f1": f1})
    return ComparableReport(
        overall=_set_scores(items),
        dimensions={d: _set_scores(items, keep=lambda pair, d=d: pair[0] == d) for d in DIMENSIONS},
        views=by_view,
        frequency=_frequency_scores(items, train_counts or Counter()),
        examples=examples,
    )


# ---- the table people read (Markdown; short enough for the UI to show in place) -------------------------------

PREDICTOR_NAMES = {"model": "model", "most_frequent": "most freq.", "nearest_neighbour": "1-NN"}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def comparable_table(reports: dict[str, ComparableReport], title: str) -> str:
    """One column per predictor: exact-set match, micro P/R/F1, mean example F1, macro F1, invalid and incompatible
    rates, F1 per dimension, exact-set match per view, and recall per training-frequency slice."""
    names = list(reports)
    first = reports[names[0]].overall
    rows = [f"| {title} (n={first.n}) | " + " | ".join(PREDICTOR_NAMES.get(n, n) for n in names) + " |",
            "| --- |" + " ---: |" * len(names)]

    def row(label: str, cell) -> None:
        rows.append(f"| {label} | " + " | ".join(cell(reports[name]) for name in names) + " |")

    row("exact set (valid only)", lambda r: _cell(r.overall.exact_set_match))
    row("micro P / R", lambda r: f"{_cell(r.overall.micro_precision)} / {_cell(r.overall.micro_recall)}")
    row("micro F1", lambda r: _cell(r.overall.micro_f1))
    row("mean example F1", lambda r: _cell(r.overall.mean_example_f1))
    row("macro F1", lambda r: _cell(r.overall.macro_f1))
    row("invalid outputs", lambda r: _cell(r.overall.invalid_output_rate))
    row("incompatible sets", lambda r: _cell(r.overall.incompatible_set_rate))
    row("F1 " + " / ".join(DIMENSIONS), lambda r: " / ".join(f"{r.dimensions[d].micro_f1:.2f}" for d in DIMENSIONS))
    views = [view for view in VIEW_SLICES if view in reports[names[0]].views]
    if views:
        row("exact " + " / ".join(views), lambda r: " / ".join(f"{r.views[v].exact_set_match:.2f}" for v in views))
    row("recall " + " / ".join(FREQUENCY_SLICES),
        lambda r: " / ".join("–" if not r.frequency[s].support else f"{r.frequency[s].recall:.2f}"
                             for s in FREQUENCY_SLICES))
    return "\n".join(rows)
