"""Scoring the labeller on (expected answer, model text) pairs into an `EvaluationReport`, and the trivial baseline.

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
  neighbour). The gate's baseline margin is taken against the strongest of them (`report.strongest_baseline`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from edugraph_pipeline.evaluation.report import Confusion, DimensionScores, EvaluationReport, LabelScore
from edugraph_pipeline.inference.answers import ParsedAnswer, parse_answer, parse_expected
from edugraph_pipeline.inference.label_resolver import DEFAULT_FUZZY_CUTOFF, LabelResolver
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

