"""Bytes each stage of the tiny DAG's dataset assets moves, local store vs GCS store (the emulator).

    python bench/store_transfer.py [--samples 200] [--tag v0.21.0] [--json]

Runs ontology_release -> knowledge_dataset -> worksheet_dataset for one release three times:
- local: `EDUGRAPH_DATA_DIR` a folder; nothing crosses a network, the table shows the bytes each stage published;
- gcs, cold: `gs://` on the emulator, every stage on a fresh "machine" (an empty cache dir), as each run in its
  own container is: a stage downloads the versions it reads, uploads what it publishes;
- gcs, warm: the same, all stages on one machine: what a machine published is in its mirror, so it reads
  back only manifests.
Then the training stage: `base_model` (the tiny pretraining, local launcher) and `knowledge_adapter` (test mode)
through the GCP launcher, its VM the Compute stand-in of the tests (the captured startup script's container
command run locally; `edugraph_pipeline_tests/kit/gcp.py`), on the same machine as the datasets:
- local store: the launcher uploads the step's inputs (dataset, base model) to the bucket and downloads the
  adapter back (the round trip);
- gcs store: the step reads its inputs from the store's versions and writes the adapter into the store itself:
  the launcher moves nothing (it reads a few control objects: status, outputs report).
Transfer is counted by the stores (`transferred`: file bytes and manifests, not HTTP framing; every store a stage
opens adds to one count, `CountedStore`) and, for the launcher, by the objects it staged (``work/*/inputs/``) and
left to download (``runs/*/files/``).
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
from edugraph_pipeline.cloud.gcs import client as gcs_client  # noqa: E402
from edugraph_pipeline.defs.ontology.resources import OntologyRepository  # noqa: E402
from edugraph_pipeline.defs.partitions import ontology_partitions  # noqa: E402
from edugraph_pipeline.defs.resources import ArtifactStoreResource, HubPublisher  # noqa: E402
from edugraph_pipeline.defs.training.launchers import GcpLauncher, LocalLauncher  # noqa: E402
from edugraph_pipeline.defs.worksheets.resources import ContentSource  # noqa: E402
from edugraph_pipeline.storage import ArtifactStore, open_store  # noqa: E402
from edugraph_pipeline_tests.kit.gcp import FakeCompute, StorageEmulator  # noqa: E402
from edugraph_pipeline_tests.kit.remotes import SHARED_RELEASES, build_ontology_remote  # noqa: E402

STAGES = ("ontology_release", "knowledge_dataset", "worksheet_dataset")
TRAINING = ("base_model", "knowledge_adapter")
BUCKET = "edugraph-bench"
TRANSFERRED = {"uploaded": 0, "downloaded": 0}  # what every store the stages open moved, added up


class CountedStore(ArtifactStoreResource):
    """The artifact store resource, its stores counting into `TRANSFERRED` (asset code opens a store per call)."""

    def store(self) -> ArtifactStore:
        return open_store(self.data_dir, cache_dir=self.cache_dir or None, transferred=TRANSFERRED)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def launcher_bytes(prefix: str) -> dict:
    """Bytes the GCP launcher staged (inputs it uploaded) and left for itself to download (outputs), by object."""
    uploaded = downloaded = 0
    for blob in gcs_client().list_blobs(BUCKET, prefix=f"{prefix}/"):
        if blob.name.startswith(f"{prefix}/work/") and "/inputs/files/" in blob.name:
            uploaded += blob.size
        elif blob.name.startswith(f"{prefix}/runs/") and "/files/" in blob.name:
            downloaded += blob.size
    return {"uploaded": uploaded, "downloaded": downloaded}


def run_stages(work: Path, remote: Path, data_dir: str, tag: str, samples: int, *, fresh_machines: bool,
               compute=None) -> list[dict]:
    """The dataset stages; with `compute` (the Compute stand-in) also the training stage on the last machine."""
    assets = dg.load_assets_from_package_module(edugraph_pipeline.defs)
    rows = []
    stages = [*STAGES, *(TRAINING if compute is not None else ())]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ontology_partitions.name, [tag])
        for index, stage in enumerate(stages):
            training = stage in TRAINING
            machine = work / (f"machine-{index}" if fresh_machines and not training else "machine")
            launcher_prefix = f"launcher-{work.name}"
            launcher = LocalLauncher()
            if training and stage != "base_model":
                launcher = GcpLauncher(project="edugraph-bench", zone="europe-west4-a", bucket=BUCKET,
                                       prefix=launcher_prefix, accelerator_count=0, python=sys.executable,
                                       poll_interval_s=0.2, message_interval_s=0.5,
                                       compute_endpoint=compute.endpoint)
            resources = {
                "artifact_store": CountedStore(data_dir=data_dir, cache_dir=str(machine)),
                "ontology_repository": OntologyRepository(remote=str(remote), cache_dir=str(work / "git-cache")),
                "content_source": ContentSource(source="sample", sample_count=samples, sample_seed=3),
                "training_launcher": launcher,
                "hub": HubPublisher(),
            }
            before = dict(TRANSFERRED)
            before_launcher = launcher_bytes(launcher_prefix) if compute is not None else None
            result = dg.materialize(assets, selection=[stage], partition_key=None if training else tag,
                                    resources=resources, instance=instance)
            if not result.success:
                sys.exit(f"{stage} failed on {data_dir}")
            row = {
                "stage": stage,
                "uploaded_bytes": TRANSFERRED["uploaded"] - before["uploaded"],
                "downloaded_bytes": TRANSFERRED["downloaded"] - before["downloaded"],
            }
            if before_launcher is not None:
                after = launcher_bytes(launcher_prefix)
                row["launcher_uploaded_bytes"] = after["uploaded"] - before_launcher["uploaded"]
                row["launcher_downloaded_bytes"] = after["downloaded"] - before_launcher["downloaded"]
            # the reads below (current) are the bench's own, not the stage's: counted before them
            store = resources["artifact_store"].store()
            row["published_bytes"] = folder_bytes(store.current(stage, None if training else tag))
            rows.append(row)
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

    # the training stage: the tiny profile in test mode on the CPU (what CI trains)
    os.environ.update({"EDUGRAPH_MODEL": "tiny", "EDUGRAPH_RUN_MODE": "test", "EDUGRAPH_DEVICE": "cpu",
                       "EDUGRAPH_KNOWLEDGE_ADAPTER": ""})
    with tempfile.TemporaryDirectory(prefix="store-transfer-") as scratch:
        work = Path(scratch)
        remote = build_ontology_remote(work / "edugraph-ontology")
        with StorageEmulator(BUCKET) as emulator, FakeCompute(work / "vm-disks", {}) as compute:
            os.environ["STORAGE_EMULATOR_HOST"] = compute.emulator_host = emulator.host
            results = {"local": run_stages(work / "local", remote, str(work / "local" / "out"), args.tag,
                                           args.samples, fresh_machines=False, compute=compute)}
            for name, fresh in (("gcs-cold", True), ("gcs-warm", False)):
                results[name] = run_stages(work / name, remote, f"gs://{BUCKET}/{name}", args.tag, args.samples,
                                           fresh_machines=fresh, compute=compute if not fresh else None)
    if args.json:
        print(json.dumps({"samples": args.samples, "tag": args.tag, "results": results}, indent=2))
        return 0
    print(f"{args.samples} sample worksheets, ontology {args.tag}; bytes per stage (uploaded / downloaded)")
    print(f"{'stage':<20}{'published':>12}{'local':>14}{'gcs cold':>24}{'gcs warm':>24}")
    for index, stage in enumerate(STAGES):
        local, cold, warm = (results[name][index] for name in ("local", "gcs-cold", "gcs-warm"))
        cells = [f"{row['uploaded_bytes']:,} / {row['downloaded_bytes']:,}" for row in (local, cold, warm)]
        print(f"{stage:<20}{cold['published_bytes']:>12,}{cells[0]:>14}{cells[1]:>24}{cells[2]:>24}")
    print("\ntraining (knowledge_adapter through the GCP launcher); store / launcher bytes, uploaded / downloaded")
    print(f"{'stage':<20}{'published':>12}{'local store':>30}{'gcs store (one machine)':>30}")
    for index, stage in enumerate(TRAINING, start=len(STAGES)):
        local, warm = results["local"][index], results["gcs-warm"][index]
        cells = [f"{r['uploaded_bytes']:,}/{r['downloaded_bytes']:,} + {r.get('launcher_uploaded_bytes', 0):,}/"
                 f"{r.get('launcher_downloaded_bytes', 0):,}" for r in (local, warm)]
        print(f"{stage:<20}{warm['published_bytes']:>12,}{cells[0]:>30}{cells[1]:>30}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
