"""The real benchmark's baselines: the shared upstream content release, read as a content source, scored by the
most-frequent-label-set and the 1-nearest-neighbour baselines on its own validation split.

    nice -n 10 python bench/real_exercises.py [--release ../shared/edugraph-exercises/edugraph-exercises-A.tar.gz]

Prints per-dimension micro/macro F1, exact match and JSON/label validity of both baselines, a per-generator table
(exact match per generator), and how long reading the release and each baseline took. Offline; no training:
training the tiny profile on this release and scoring it against these baselines (issue 12, item 6) is not part
of this script yet.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edugraph_pipeline.evaluation.baselines import MOST_FREQUENT, NEAREST_NEIGHBOUR, nearest_neighbour_answers  # noqa: E402
from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer  # noqa: E402
from edugraph_pipeline.ontology.model import DIMENSIONS  # noqa: E402
from edugraph_pipeline.ontology.parsing import parse_release  # noqa: E402
from edugraph_pipeline.worksheets.content import read_content  # noqa: E402
from edugraph_pipeline.worksheets.dataset import build_dataset  # noqa: E402
from edugraph_pipeline_tests.remotes import SHARED_DIR, SHARED_RELEASES, shared_release_files  # noqa: E402

DEFAULT_RELEASE = SHARED_DIR / "edugraph-exercises" / "edugraph-exercises-A.tar.gz"
ONTOLOGY_TAG = "v0.21.0"  # the release the shared content was generated with


def report_rows(name: str, report) -> list[str]:
    cells = [f"{report.dimensions[d].micro_f1:.3f} / {report.dimensions[d].macro_f1:.3f}" for d in DIMENSIONS]
    return [f"| {name} | " + " | ".join(cells) + f" | {report.micro_f1_mean:.3f} | {report.exact_match:.3f} | "
            f"{report.json_valid_rate:.2f} / {report.labels_valid_rate:.2f} |"]


def per_generator_table(validation, predictions: dict[str, list[str]]) -> list[str]:
    expected = list(validation["labels"])
    by_kind: dict[str, list[int]] = defaultdict(list)
    for index, kind in enumerate(validation["kind"]):
        by_kind[kind].append(index)
    names = list(predictions)
    lines = ["| Generator | Rows | " + " | ".join(f"{n} exact" for n in names) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for kind in sorted(by_kind, key=lambda k: (-len(by_kind[k]), k)):
        rows = by_kind[kind]
        # Both sides are canonical answer strings (format_answer), so string equality is exact match.
        cells = [f"{sum(predictions[n][i] == expected[i] for i in rows) / len(rows):.2f}" for n in names]
        lines.append(f"| {kind} | {len(rows)} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=str(DEFAULT_RELEASE), help="content source of the release")
    args = parser.parse_args()
    if not (SHARED_RELEASES / ONTOLOGY_TAG).is_dir():
        sys.exit(f"{SHARED_RELEASES / ONTOLOGY_TAG} is absent: the benchmark needs ../shared")
    ontology = parse_release(shared_release_files(ONTOLOGY_TAG), version=ONTOLOGY_TAG, commit="shared")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        release = read_content(args.release, Path(scratch), ontology)
    dataset, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    read_seconds = time.perf_counter() - start
    train, validation = dataset["train"], dataset["validation"]
    print(f"release {release.source} ({release.version[:12]}): {summary.rows} rows, split {summary.split_method}, "
          f"overlap {summary.split_overlap}, {len(summary.skipped)} skipped; read in {read_seconds:.1f} s")

    expected = list(validation["labels"])
    start = time.perf_counter()
    predictions = {MOST_FREQUENT: [most_frequent_answer(train["labels"])] * len(validation)}
    frequent_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predictions[NEAREST_NEIGHBOUR] = nearest_neighbour_answers(train, validation)
    knn_seconds = time.perf_counter() - start
    frequent, knn = (evaluate_predictions(expected, predictions[name], ontology) for name in predictions)
    print(f"\nbaselines: {MOST_FREQUENT} {frequent_seconds:.2f} s, {NEAREST_NEIGHBOUR} {knn_seconds:.2f} s\n")
    print("| Predictor | " + " | ".join(f"{d} micro / macro F1" for d in DIMENSIONS)
          + " | mean micro F1 | exact match | JSON / label valid |")
    print("| --- | " + " | ".join("---:" for _ in DIMENSIONS) + " | ---: | ---: | ---: |")
    for line in report_rows(MOST_FREQUENT, frequent) + report_rows(NEAREST_NEIGHBOUR, knn):
        print(line)
    print(f"\nnearest neighbour vs most frequent, mean micro F1: {knn.micro_f1_mean / frequent.micro_f1_mean:.2f}x\n")
    print("\n".join(per_generator_table(validation, predictions)))


if __name__ == "__main__":
    main()
