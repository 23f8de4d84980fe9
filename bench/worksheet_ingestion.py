"""Time worksheet content ingestion: images/s and peak memory, against a naive baseline in the same run.

    python bench/worksheet_ingestion.py --count 2000

A release of `--count` generated images (ImageFolder layout) is written to a temporary folder first (not timed),
then ingested twice, each time ending in the same `build_dataset` + `save_to_disk`:
- pipeline: `content_formats.read_folder` (full decode for validation, original bytes kept for plain RGB PNG/JPEG);
- baseline: the naive way, decoding every image, converting to RGB and re-encoding it as PNG, no shortcuts.
Peak memory is Python allocations measured with tracemalloc (which slows both runs the same way).

    python bench/worksheet_ingestion.py --shared-hub

instead serves the shared real release (`../shared/edugraph-exercises`) from the local Hub of the test kit, tagged
`v0.21.0-01` with its rows' `tags` renamed `labels` as upstream publishes them now, and times what
`worksheet_dataset` does with it: the download of the tag's commit, reading it (every image decoded and
normalised), upstream's ingestion contract (strict) and the dataset built and saved with the release's own splits.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edugraph_pipeline.ontology.parsing import parse_release  # noqa: E402
from edugraph_pipeline.worksheets.content_formats import read_folder  # noqa: E402
from edugraph_pipeline.worksheets.content_sources import sample_release  # noqa: E402
from edugraph_pipeline.worksheets.dataset import build_dataset  # noqa: E402
from edugraph_pipeline.worksheets.items import SkipLog, WorksheetItem  # noqa: E402

SHARED = ROOT / "../shared"


def load_ontology(tag: str):
    folder = SHARED / "ontology-releases" / tag
    if not folder.is_dir():
        sys.exit(f"{folder} is absent: the benchmark labels against a real ontology release from ../shared")
    files = {path.name: path.read_bytes() for path in folder.iterdir() if path.name != "RELEASED_AT"}
    return parse_release(files, version=tag, commit="bench")


def write_release(items: list[WorksheetItem], folder: Path) -> None:
    rows = []
    for item in items:
        name = f"{item.kind}/{item.problem_id}_{item.view}.png"
        (folder / "train" / item.kind).mkdir(parents=True, exist_ok=True)
        (folder / "train" / name).write_bytes(item.image)
        rows.append({"file_name": name, "tags": list(item.labels), "solution": item.view == "solution",
                     "problem_id": item.problem_id})
    (folder / "train" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def naive_items(folder: Path) -> list[WorksheetItem]:
    items = []
    for line in (folder / "train" / "metadata.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        with Image.open(folder / "train" / row["file_name"]) as image:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
        view = "unsupported" if row["tags"] == ["UnsupportedMaterial"] else (
            "solution" if row["solution"] else "question")
        items.append(WorksheetItem(buffer.getvalue(), tuple(row["tags"]), row["problem_id"], view,
                                   row["file_name"].split("/")[0], row["file_name"]))
    return items


def measure(label: str, ingest, ontology, out: Path) -> dict:
    tracemalloc.start()
    started = time.perf_counter()
    items, skipped = ingest()
    read_seconds = time.perf_counter() - started
    dataset, summary = build_dataset(items, ontology, skipped=skipped)
    dataset.save_to_disk(str(out / label))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows = sum(summary.rows.values())
    return {"label": label, "images": len(items), "rows": rows, "read_s": read_seconds, "total_s": seconds,
            "images_per_s": len(items) / seconds, "peak_mib": peak / 2**20, "skipped": len(summary.skipped)}


def shared_release_via_hub(ontology) -> None:
    """The shared release as the Hub tag v0.21.0-01 (`labels` rows), through download, read, contract, dataset."""
    import tarfile

    import pytest
    from huggingface_hub import HfApi

    from edugraph_pipeline.worksheets.content_sources import read_content
    from edugraph_pipeline.worksheets.contract import enforce
    from edugraph_pipeline_tests.kit.hub_server import HubServer, disable_xet, no_phone_home

    release = SHARED / "edugraph-exercises" / "edugraph-exercises-A.tar.gz"
    if not release.is_file():
        sys.exit(f"{release} is absent: --shared-hub needs ../shared")
    with tempfile.TemporaryDirectory() as scratch, pytest.MonkeyPatch.context() as patch, HubServer() as hub:
        disable_xet(patch)
        no_phone_home(patch)
        patch.setenv("HF_ENDPOINT", hub.endpoint)
        patch.setenv("HF_HOME", str(Path(scratch) / "hf-home"))
        with tarfile.open(release) as archive:
            archive.extractall(scratch, filter="data")
        root = Path(scratch) / "edugraph-exercises-A"
        for split in ("train", "validation"):
            metadata = root / split / "metadata.jsonl"
            rows = [json.loads(line) for line in metadata.read_text(encoding="utf-8").splitlines()]
            metadata.write_text("".join(json.dumps({"file_name": r["file_name"], "labels": r["tags"],
                                                    "solution": r["solution"]}) + "\n" for r in rows))
        api = HfApi(endpoint=hub.endpoint, token=hub.token)
        api.create_repo("bench/edugraph-exercises", repo_type="dataset")
        api.upload_folder(repo_id="bench/edugraph-exercises", repo_type="dataset", folder_path=root,
                          allow_patterns=["train/**", "validation/**"])
        api.create_tag("bench/edugraph-exercises", repo_type="dataset", tag="v0.21.0-01")
        source = "hf://datasets/bench/edugraph-exercises@v0.21.0-01"
        steps: dict[str, float] = {}
        started = time.perf_counter()
        from edugraph_pipeline.worksheets import hub_source

        hub_source.download_release(source, Path(scratch) / "cache")
        steps["download (local Hub)"] = time.perf_counter() - started
        mark = time.perf_counter()
        content = read_content(source, Path(scratch) / "work", ontology, cache_dir=Path(scratch) / "cache")
        steps["read and normalise"] = time.perf_counter() - mark
        mark = time.perf_counter()
        enforce(content, ontology)
        steps["ingestion contract (strict)"] = time.perf_counter() - mark
        mark = time.perf_counter()
        dataset, summary = build_dataset(content.items, ontology, release_splits=content.splits)
        dataset.save_to_disk(str(Path(scratch) / "out"))
        steps["build and save the dataset"] = time.perf_counter() - mark
        total = time.perf_counter() - started
    print(f"{source}: {len(content.items)} images ({content.reencoded_images} re-encoded), label field "
          f"{content.label_field}, rows {summary.rows}, split {summary.split_method}, {len(summary.skipped)} skipped")
    for name, seconds in steps.items():
        print(f"{name:>30}: {seconds:.1f} s")
    print(f"{'total':>30}: {total:.1f} s = {len(content.items) / total:.1f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="images in the generated release (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ontology", default="v0.21.0", help="ontology release tag under ../shared")
    parser.add_argument("--shared-hub", action="store_true",
                        help="time the shared real release served by the local Hub as v0.21.0-01 instead")
    args = parser.parse_args()

    ontology = load_ontology(args.ontology)
    if args.shared_hub:
        shared_release_via_hub(ontology)
        return
    started = time.perf_counter()
    release = sample_release(ontology, args.count, args.seed)
    generation = time.perf_counter() - started
    print(f"generated {len(release.items)} images in {generation:.1f}s ({len(release.items) / generation:.1f}/s)")

    with tempfile.TemporaryDirectory() as scratch:
        folder, out = Path(scratch) / "release", Path(scratch) / "out"
        write_release(release.items, folder)
        size = sum(p.stat().st_size for p in folder.rglob("*.png"))
        print(f"release: {size / 2**20:.1f} MiB of PNG in {folder}")
        del release

        def pipeline():
            content = read_folder(folder, "bench", "bench")
            return content.items, content.skipped

        results = [
            measure("pipeline", pipeline, ontology, out),
            measure("baseline-decode-reencode", lambda: (naive_items(folder), SkipLog()), ontology, out),
        ]
    for result in results:
        print(
            f"{result['label']:>26}: {result['images']} images, {result['rows']} rows, read {result['read_s']:.1f}s, "
            f"total {result['total_s']:.1f}s = {result['images_per_s']:.1f} images/s, "
            f"peak {result['peak_mib']:.0f} MiB (tracemalloc), {result['skipped']} skipped"
        )
    pipeline_result, baseline = results
    print(f"speed-up (pipeline vs baseline, images/s): {pipeline_result['images_per_s'] / baseline['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
