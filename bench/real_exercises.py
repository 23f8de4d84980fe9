"""The real benchmark: the shared upstream content release, read as a content source, the tiny profile trained on
it end to end, and the model scored against the most-frequent-label-set and the 1-nearest-neighbour baselines on
the release's own validation split, all measured in the same run.

    nice -n 5 python bench/real_exercises.py [--release PATH] [--work DIR] [--base DIR] [recipe knobs]
    nice -n 5 python bench/real_exercises.py --baselines-only

Path: `read_content` + `build_dataset` (the worksheet dataset, the release's own split kept) -> the tiny base
(`build_pretrained_tiny_model`, or `--base` to reuse one) -> optional stage 1 (`generate_pairs` + `train_stage`) ->
stage 2 (`stage_config` of the tiny profile + `train_stage`) -> `merge_into_folder` -> `Classifier` ->
`evaluate_model` (what `model_evaluation` runs). Prints per-dimension micro/macro F1, exact match, JSON/label
validity, the table comparable to upstream's (exact-set match on valid outputs, micro P/R/F1, mean per-example F1,
macro F1, invalid and incompatible rates, per dimension, question/solution and training-frequency slices) on the
final cohort, the selection cohort and the whole validation split, a per-generator table, the wall time of every
step; with `--sample-kinds`, the same recipe trained on our sample generator's kinds only and scored on the same
validation split. The recipe knobs (`--steps`, `--epochs`,
`--max-pixels`, `--rank`, `--lr`, `--targets`, `--stage1`) override the tiny profile's stage-2 settings for
experiments; without them the run is exactly the `tiny` profile. Offline; `../shared` is required.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edugraph_pipeline.evaluation.baselines import MOST_FREQUENT, NEAREST_NEIGHBOUR, nearest_neighbour_answers  # noqa: E402
from edugraph_pipeline.evaluation.cohorts import FINAL, SELECTION, assign_cohorts  # noqa: E402
from edugraph_pipeline.evaluation.comparable import comparable_table  # noqa: E402
from edugraph_pipeline.evaluation.metrics import evaluate_predictions, most_frequent_answer  # noqa: E402
from edugraph_pipeline.evaluation.run import WHOLE_SPLIT, comparable_tables  # noqa: E402
from edugraph_pipeline.ontology.model import DIMENSIONS  # noqa: E402
from edugraph_pipeline.ontology.parsing import parse_release  # noqa: E402
from edugraph_pipeline.worksheets.content_sources import SAMPLE, read_content  # noqa: E402
from edugraph_pipeline.worksheets.dataset import build_dataset  # noqa: E402
from edugraph_pipeline_tests.kit.remotes import SHARED_DIR, SHARED_RELEASES, shared_release_files  # noqa: E402

DEFAULT_RELEASE = SHARED_DIR / "edugraph-exercises" / "edugraph-exercises-A.tar.gz"
ONTOLOGY_TAG = "v0.21.0"  # the release the shared content was generated with
MODEL = "tiny"


class Clock:
    """Wall time of each named step, printed as a table at the end."""

    def __init__(self):
        self.steps: list[tuple[str, float]] = []

    def run(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.steps.append((name, time.perf_counter() - start))
        print(f"[{name}: {self.steps[-1][1]:.1f} s]", flush=True)
        return result


def report_rows(name: str, report) -> list[str]:
    cells = [f"{report.dimensions[d].micro_f1:.3f} / {report.dimensions[d].macro_f1:.3f}" for d in DIMENSIONS]
    return [f"| {name} | " + " | ".join(cells) + f" | {report.micro_f1_mean:.3f} | {report.exact_match:.3f} | "
            f"{report.json_valid_rate:.2f} / {report.labels_valid_rate:.2f} |"]


def per_generator_table(validation, predictions: dict[str, list[str]]) -> list[str]:
    """Exact match per generator; `predictions` are canonical answer strings (repaired answers for models)."""
    expected = list(validation["labels"])
    by_kind: dict[str, list[int]] = defaultdict(list)
    for index, kind in enumerate(validation["kind"]):
        by_kind[kind].append(index)
    names = list(predictions)
    lines = ["| Generator | Rows | " + " | ".join(f"{n} exact" for n in names) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for kind in sorted(by_kind, key=lambda k: (-len(by_kind[k]), k)):
        rows = by_kind[kind]
        cells = [f"{sum(predictions[n][i] == expected[i] for i in rows) / len(rows):.2f}" for n in names]
        lines.append(f"| {kind} | {len(rows)} | " + " | ".join(cells) + " |")
    return lines


def worksheet_dataset(source: str, ontology, scratch: Path, clock: Clock, name: str, **kwargs):
    release = clock.run(f"read {name}", read_content, source, scratch / name, ontology, **kwargs)
    dataset, summary = build_dataset(release.items, ontology, release_splits=release.splits)
    print(f"{name}: {release.source} ({release.version[:12]}): {summary.rows} rows, split {summary.split_method}, "
          f"overlap {summary.split_overlap}, {len(summary.skipped)} skipped")
    return dataset


def recipe(args):
    """The tiny profile with the command line's stage-2 overrides (none given: the profile as it is)."""
    from edugraph_pipeline.training.profiles import profile

    prof = profile(MODEL)
    lora = prof.worksheet
    lora = replace(
        lora,
        epochs=args.epochs if args.epochs is not None else lora.epochs,
        r=args.rank if args.rank is not None else lora.r,
        alpha=2 * args.rank if args.rank is not None else lora.alpha,
        lr=args.lr if args.lr is not None else lora.lr,
        target_modules=args.targets.split(",") if args.targets else lora.target_modules,
    )
    return replace(
        prof,
        worksheet=lora,
        worksheet_max_steps=args.steps if args.steps is not None else prof.worksheet_max_steps,
        max_pixels=32 * 32 * args.max_pixels if args.max_pixels is not None else prof.max_pixels,
    )


def tiny_base(args, work: Path, clock: Clock) -> str:
    from edugraph_pipeline.training.tiny_model import build_pretrained_tiny_model

    if args.base:
        return args.base
    out = work / "base"
    if not (out / "config.json").exists():
        clock.run("pretrain tiny base", build_pretrained_tiny_model, out, "train", log_fn=lambda m: None)
    return str(out)


def knowledge_adapter(prof, base: str, ontology, work: Path, clock: Clock) -> str:
    import datasets

    from edugraph_pipeline.knowledge.qa import generate_pairs
    from edugraph_pipeline.training.profiles import stage_config
    from edugraph_pipeline.training.sft import train_stage

    folder = work / "knowledge"
    if not (folder / "dataset").exists():
        datasets.Dataset.from_list([pair.as_row() for pair in generate_pairs(ontology)]).save_to_disk(
            str(folder / "dataset"))
    cfg = stage_config("knowledge", base_model=base, dataset_path=str(folder / "dataset"),
                       output_dir=str(folder / "out"), prof=prof, mode="train", device="cpu")
    metrics = clock.run("stage 1", train_stage, cfg)
    return metrics["adapter_path"]


def train_and_evaluate(name: str, prof, base: str, dataset, evaluation_set, ontology, work: Path, clock: Clock,
                       knowledge: str | None):
    """Stage 2 on `dataset`'s train split, merged, classified and scored on `evaluation_set` (a DatasetDict whose
    train split gives the baselines and whose validation split is scored)."""
    from edugraph_pipeline.evaluation.run import evaluate_model
    from edugraph_pipeline.inference.classifier import Classifier
    from edugraph_pipeline.training.merge import merge_into_folder
    from edugraph_pipeline.training.profiles import stage_config
    from edugraph_pipeline.training.sft import train_stage

    folder = work / name
    dataset.save_to_disk(str(folder / "dataset"))
    cfg = stage_config("worksheet", base_model=base, dataset_path=str(folder / "dataset"),
                       output_dir=str(folder / "out"), prof=prof, mode="train", device="cpu",
                       knowledge_adapter=knowledge)
    metrics = clock.run(f"stage 2 ({name})", train_stage, cfg)
    print(f"{name}: {metrics['steps']} steps, {metrics['trainable_parameters']:,} trainable of "
          f"{metrics['total_parameters']:,}, loss {metrics['train_loss']:.4f}, "
          f"{metrics['image_tokens_per_image_max']} image tokens max", flush=True)
    adapters = ([knowledge] if knowledge else []) + [metrics["adapter_path"]]
    model_dir = folder / "model"
    clock.run(f"merge ({name})", merge_into_folder, base, adapters, metrics["adapter_path"], model_dir)
    ontology.save(model_dir / "ontology.json")
    classifier = Classifier.from_folder(model_dir)
    run = clock.run(f"evaluate ({name})", evaluate_model, classifier, evaluation_set, thresholds="tiny")
    return run, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=str(DEFAULT_RELEASE), help="content source of the release")
    parser.add_argument("--work", help="keep the datasets, base and adapters here (default: a temporary folder)")
    parser.add_argument("--base", help="a pretrained tiny base folder to reuse (default: pretrain one)")
    parser.add_argument("--baselines-only", action="store_true", help="no training: the two baselines only")
    parser.add_argument("--sample-kinds", action="store_true",
                        help="also train on our sample kinds only and score on the same validation split")
    parser.add_argument("--sample-count", type=int, default=1000, help="sample images for --sample-kinds")
    parser.add_argument("--stage1", action="store_true", help="train stage 1 (knowledge) first, as the DAG does")
    parser.add_argument("--steps", type=int, help="stage-2 step cap (profile: worksheet_max_steps)")
    parser.add_argument("--epochs", type=float, help="stage-2 epochs")
    parser.add_argument("--max-pixels", type=int, help="image-token budget per image (max_pixels / 32²)")
    parser.add_argument("--rank", type=int, help="stage-2 LoRA rank (alpha = 2 × rank)")
    parser.add_argument("--lr", type=float, help="stage-2 learning rate")
    parser.add_argument("--targets", help="stage-2 LoRA target modules, comma-separated (default all-linear)")
    parser.add_argument("--json", help="write the headline numbers here")
    args = parser.parse_args()
    if not (SHARED_RELEASES / ONTOLOGY_TAG).is_dir():
        sys.exit(f"{SHARED_RELEASES / ONTOLOGY_TAG} is absent: the benchmark needs ../shared")
    ontology = parse_release(shared_release_files(ONTOLOGY_TAG), version=ONTOLOGY_TAG, commit="shared")
    clock = Clock()
    total_start = time.perf_counter()

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work) if args.work else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        real = worksheet_dataset(args.release, ontology, work, clock, "release")
        train, validation = real["train"], real["validation"]
        expected = list(validation["labels"])
        predictions = {MOST_FREQUENT: [most_frequent_answer(train["labels"])] * len(validation)}
        predictions[NEAREST_NEIGHBOUR] = clock.run("nearest neighbour", nearest_neighbour_answers, train, validation)
        reports = {name: evaluate_predictions(expected, predictions[name], ontology) for name in predictions}
        texts = dict(predictions)  # what each predictor said, as scored by the comparable table (models: raw)
        training: dict[str, dict] = {}
        if not args.baselines_only:
            prof = recipe(args)
            print(f"recipe: stage 2 {json.dumps(prof.worksheet.__dict__)}, steps {prof.worksheet_max_steps}, "
                  f"image tokens <= {prof.max_pixels // 1024}, stage 1 {'yes' if args.stage1 else 'no'}", flush=True)
            base = tiny_base(args, work, clock)
            knowledge = knowledge_adapter(prof, base, ontology, work, clock) if args.stage1 else None
            variants = {"tiny (release)": real}
            if args.sample_kinds:
                sample = worksheet_dataset(SAMPLE, ontology, work, clock, "sample", sample_count=args.sample_count)
                variants["tiny (sample kinds)"] = sample
            for index, (name, dataset) in enumerate(variants.items()):
                run, metrics = train_and_evaluate(f"model{index}", prof, base, dataset, real, ontology, work, clock,
                                                  knowledge)
                reports[name] = evaluate_predictions(expected, run.raw, ontology)  # every row, like the baselines
                predictions[name] = [example_answer(text, ontology) for text in run.raw]
                texts[name] = run.raw
                training[name] = {"steps": metrics["steps"], "train_loss": metrics["train_loss"],
                                  "trainable_parameters": metrics["trainable_parameters"]}

    print(f"\nvalidation: {len(validation)} rows ({reports[MOST_FREQUENT].n_worksheets} worksheets)\n")
    print("| Predictor | " + " | ".join(f"{d} micro / macro F1" for d in DIMENSIONS)
          + " | mean micro F1 | exact match | JSON / label valid |")
    print("| --- | " + " | ".join("---:" for _ in DIMENSIONS) + " | ---: | ---: | ---: |")
    for name, report in reports.items():
        print("\n".join(report_rows(name, report)))
    knn = reports[NEAREST_NEIGHBOUR]
    for name in training:
        gaps = {d: reports[name].dimensions[d].micro_f1 - knn.dimensions[d].micro_f1 for d in DIMENSIONS}
        verdict = "beats" if all(gap > 0 for gap in gaps.values()) else "does not beat"
        print(f"\n{name} {verdict} the nearest neighbour on every dimension: micro-F1 gaps "
              + ", ".join(f"{d} {gap:+.3f}" for d, gap in gaps.items()))
    print()
    print("\n".join(per_generator_table(validation, predictions)))
    cohorts = assign_cohorts(list(validation["problem_id"]))
    groups = {FINAL: cohorts.rows(FINAL), SELECTION: cohorts.rows(SELECTION), WHOLE_SPLIT: list(range(len(validation)))}
    tables = comparable_tables(expected, texts, ontology, groups, views=list(validation["view"]),
                               train_labels=train["labels"], eligible=ontology.is_eligible,
                               compatible=ontology.is_compatible)
    print(f"\nComparable to upstream's ({cohorts.note}):")
    for cohort, title in ((FINAL, "final cohort"), (SELECTION, "selection cohort"), (WHOLE_SPLIT, "whole split")):
        if cohort in tables:
            print()
            print(comparable_table(tables[cohort], title))
    print("\n| Step | Wall time |\n| --- | ---: |")
    for name, seconds in clock.steps:
        print(f"| {name} | {seconds:.1f} s |")
    total = time.perf_counter() - total_start
    print(f"| total | {total:.1f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "recipe": vars(args), "training": training, "wall_s": total, "steps": dict(clock.steps),
            "reports": {name: {**r.summary(), "exact_match": r.exact_match} for name, r in reports.items()},
            "comparable": {cohort: {name: r.to_json() for name, r in by_name.items()}
                           for cohort, by_name in tables.items()},
        }, indent=2, default=str), encoding="utf-8")


def example_answer(raw: str, ontology) -> str:
    """The repaired answer production would serve for a model text (canonical string, comparable to labels)."""
    from edugraph_pipeline.inference.answers import parse_answer

    return parse_answer(raw, ontology).text


if __name__ == "__main__":
    main()
