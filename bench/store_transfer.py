"""Bytes each stage of the tiny DAG's dataset assets moves, local store vs GCS store (the emulator).

    python bench/store_transfer.py [--samples 200] [--tag v0.21.0] [--json]

Runs ontology_release -> knowledge_dataset -> worksheet_dataset for one release three times:
- local: `EDUGRAPH_DATA_DIR` a folder; nothing crosses a network, the table shows the bytes each stage published;
- gcs, cold: `gs://` on the emulator, every stage on a fresh "machine" (an empty cache dir), as each run in its
  own container is: a stage downloads the versions it reads, uploads what it publishes;
- gcs, warm: the same, all stages on one machine: what a machine published is in its mirror, so it reads
  back only manifests.
Transfer is counted by the store (`store_gcs.PROCESS_TRANSFERRED`: file bytes and manifests, not HTTP framing).
Needs ../shared/ontology-releases (a local git remote of the releases is built from it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

import edugraph_pipeline.defs  # noqa: E402
from edugraph_pipeline import store_gcs  # noqa: E402
from edugraph_pipeline.defs.ontology.resources import OntologyRepository  # noqa: E402
from edugraph_pipeline.defs.partitions import ontology_partitions  # noqa: E402
from edugraph_pipeline.defs.resources import ArtifactStoreResource, HubPublisher  # noqa: E402
from edugraph_pipeline.defs.training.launchers import LocalLauncher  # noqa: E402
from edugraph_pipeline.defs.worksheets.resources import ContentSource  # noqa: E402
from edugraph_pipeline_tests.launchers.gcp_fakes import StorageEmulator  # noqa: E402
from edugraph_pipeline_tests.remotes import SHARED_RELEASES, build_ontology_remote  # noqa: E402

STAGES = ("ontology_release", "knowledge_dataset", "worksheet_dataset")
BUCKET = "edugraph-bench"


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run_stages(work: Path, remote: Path, data_dir: str, tag: str, samples: int, *, fresh_machines: bool) -> list[dict]:
    assets = dg.load_assets_from_package_module(edugraph_pipeline.defs)
    rows = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ontology_partitions.name, [tag])
        for index, stage in enumerate(STAGES):
            machine = work / (f"machine-{index}" if fresh_machines else "machine")
            resources = {
                "artifact_store": ArtifactStoreResource(data_dir=data_dir, cache_dir=str(machine)),
                "ontology_repository": OntologyRepository(remote=str(remote), cache_dir=str(work / "git-cache")),
                "content_source": ContentSource(source="sample", sample_count=samples, sample_seed=3),
                "training_launcher": LocalLauncher(),
                "hub": HubPublisher(),
            }
            before = dict(store_gcs.PROCESS_TRANSFERRED)
            result = dg.materialize(assets, selection=[stage], partition_key=tag, resources=resources,
                                    instance=instance)
            if not result.success:
                sys.exit(f"{stage} failed on {data_dir}")
            store = resources["artifact_store"].store()
            rows.append({
                "stage": stage,
                "published_bytes": folder_bytes(store.current(stage, tag)),
                "uploaded_bytes": store_gcs.PROCESS_TRANSFERRED["uploaded"] - before["uploaded"],
                "downloaded_bytes": store_gcs.PROCESS_TRANSFERRED["downloaded"] - before["downloaded"],
            })
            # the reads above (current) are the bench's own, not the stage's: counted before them
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="generated worksheets (EDUGRAPH_SAMPLE_COUNT)")
    parser.add_argument("--tag", default="v0.21.0", help="ontology release")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not SHARED_RELEASES.is_dir():
        sys.exit(f"{SHARED_RELEASES} is absent: the benchmark builds its ontology remote from it")

    import os

    with tempfile.TemporaryDirectory(prefix="store-transfer-") as scratch:
        work = Path(scratch)
        remote = build_ontology_remote(work / "edugraph-ontology")
        results = {"local": run_stages(work / "local", remote, str(work / "local" / "out"), args.tag, args.samples,
                                       fresh_machines=False)}
        with StorageEmulator(BUCKET) as emulator:
            os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
            for name, fresh in (("gcs-cold", True), ("gcs-warm", False)):
                results[name] = run_stages(work / name, remote, f"gs://{BUCKET}/{name}", args.tag, args.samples,
                                           fresh_machines=fresh)
    if args.json:
        print(json.dumps({"samples": args.samples, "tag": args.tag, "results": results}, indent=2))
        return 0
    print(f"{args.samples} sample worksheets, ontology {args.tag}; bytes per stage (uploaded / downloaded)")
    print(f"{'stage':<20}{'published':>12}{'local':>14}{'gcs cold':>24}{'gcs warm':>24}")
    for index, stage in enumerate(STAGES):
        local, cold, warm = (results[name][index] for name in ("local", "gcs-cold", "gcs-warm"))
        cells = [f"{row['uploaded_bytes']:,} / {row['downloaded_bytes']:,}" for row in (local, cold, warm)]
        print(f"{stage:<20}{cold['published_bytes']:>12,}{cells[0]:>14}{cells[1]:>24}{cells[2]:>24}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
