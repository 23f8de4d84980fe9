"""Per-stage times of a first run of the whole pipeline and of a rerun with nothing changed, from a fresh folder.

    .venv/bin/python bench/pipeline_time.py                 # `edugraph run` twice (first run, rerun)
    .venv/bin/python bench/pipeline_time.py --how readme    # the README's commands before `make run` existed
    .venv/bin/python bench/pipeline_time.py --code /tmp/old # the same, with another checkout's code in the steps

Everything is offline: the ontology remote is built from ../shared/ontology-releases, artifacts and the Dagster
instance live in a new folder (``--root``). The stage times are read from the Dagster event log of the runs the
commands made (each step's start to its end); ``outside runs`` is the rest of the wall time (starting Python,
loading the code location, syncing partitions, printing the summary). CPU seconds (user + system, of every process
the commands started) are given beside the wall time: unlike the wall time they hardly depend on what else the
machine is doing. The load average is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from edugraph_pipeline.defs.pipeline.progress import RunTimeline, timeline_of
from edugraph_pipeline_tests.kit.remotes import REPO_ROOT, SHARED_RELEASES, build_ontology_remote, release_tags

MODULE = ["-m", "edugraph_pipeline.definitions"]


def commands(how: str, tag: str) -> list[list[str]]:
    python = sys.executable
    if how == "run":
        return [[python, "-m", "edugraph_pipeline", "run"]]
    materialize = [python, "-m", "dagster", "asset", "materialize", *MODULE, "--select"]
    return [  # README "Run the pipeline" before issue 26 (classify and lineage left out: they build nothing)
        [python, "-m", "edugraph_pipeline", "releases", "sync"],
        [*materialize, "base_model"],
        [*materialize, "ontology_release,knowledge_dataset,worksheet_dataset", "--partition", tag],
        [*materialize, "knowledge_adapter,trained_adapter,merged_model,model_evaluation,hf_publication"],
    ]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def measure(how: str, env: dict, home: Path, tag: str, log: Path) -> dict:
    """One pass of the commands: wall and CPU seconds, and the timelines of the runs it made."""
    before_runs = {run.run_id for run in dg.DagsterInstance.from_config(str(home)).get_runs()}
    cpu, start = children_cpu(), time.perf_counter()
    failed = []
    with log.open("w") as out:
        for command in commands(how, tag):
            code = subprocess.run(command, env=env, cwd=home.parent, stdout=out, stderr=subprocess.STDOUT).returncode
            if code:
                failed.append(f"{' '.join(command[1:])} exited with {code}")
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    instance = dg.DagsterInstance.from_config(str(home))
    runs = [run.run_id for run in reversed(instance.get_runs()) if run.run_id not in before_runs]
    timelines = [timeline_of(instance, run_id) for run_id in runs]
    evaluated = any(t.steps.get("model_evaluation") and t.steps["model_evaluation"].materialized for t in timelines)
    if failed and not evaluated:  # a failed evaluation gate still counts as a timed pass; anything else does not
        sys.exit(f"{'; '.join(failed)}: see {log}")
    return {"wall": wall, "cpu": cpu, "timelines": timelines}


def stage_table(passes: list[dict]) -> list[str]:
    """One row per step (asset), one column per pass: seconds, and `r` where the asset reported reusing."""
    order: list[str] = []
    cells: list[dict[str, str]] = []
    for measured in passes:
        row: dict[str, str] = {}
        timelines: list[RunTimeline] = measured["timelines"]
        in_runs = 0.0
        for timeline in timelines:
            in_runs += timeline.seconds or 0.0
            for step, timing in timeline.steps.items():
                if step not in order:
                    order.append(step)
                seconds = f"{timing.seconds:.1f}" if timing.seconds is not None else timing.outcome
                row[step] = seconds + (" r" if timing.reused else "") + ("" if timing.outcome == "succeeded" else " !")
        row["outside runs"] = f"{measured['wall'] - in_runs:.1f}"
        row["wall"] = f"{measured['wall']:.1f}"
        row["cpu (user+sys)"] = f"{measured['cpu']:.1f}"
        cells.append(row)
    names = ["first run", *(f"rerun {i}" for i in range(1, len(passes)))]
    lines = [f"| stage (s) | {' | '.join(names)} |", "| --- |" + " ---: |" * len(names)]
    for stage in [*order, "outside runs", "wall", "cpu (user+sys)"]:
        lines.append(f"| {stage} | {' | '.join(row.get(stage, '-') for row in cells)} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--how", choices=["run", "readme"], default="run", help="edugraph run, or the README's commands")
    parser.add_argument("--runs", type=int, default=2, help="passes: the first run, then reruns (default 2)")
    parser.add_argument("--root", type=Path, help="work folder (default: a new temporary folder, removed after)")
    parser.add_argument("--code", type=Path, help="run the steps with this checkout's edugraph_pipeline (PYTHONPATH)")
    parser.add_argument("--run-mode", default="train", help="EDUGRAPH_RUN_MODE (default train)")
    parser.add_argument("--sample-count", default="", help="EDUGRAPH_SAMPLE_COUNT (default: the setting's default)")
    args = parser.parse_args()
    if not SHARED_RELEASES.is_dir():
        sys.exit(f"{SHARED_RELEASES} is absent: the offline ontology remote is built from it")
    root = args.root or Path(tempfile.mkdtemp(prefix="edugraph-pipeline-time-"))
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    remote = root / "edugraph-ontology"
    if not remote.exists():
        build_ontology_remote(remote)
    tag = release_tags()[-1]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "EDUGRAPH_DATA_DIR": str(root / "out"),
        "EDUGRAPH_ONTOLOGY_REPO": str(remote),
        "EDUGRAPH_RUN_MODE": args.run_mode,
    }
    for name in ("EDUGRAPH_CACHE_DIR", "EDUGRAPH_HF_REPO", "EDUGRAPH_MODEL", "EDUGRAPH_TRAINING_LAUNCHER"):
        env.pop(name, None)  # the defaults: tiny profile, local launcher, cache under the data dir, no Hub
    if args.sample_count:
        env["EDUGRAPH_SAMPLE_COUNT"] = args.sample_count
    if args.code:
        env["PYTHONPATH"] = str(args.code.resolve())
    print(f"{args.how} in {root} ({'code ' + str(args.code) if args.code else 'this checkout'}), "
          f"{os.cpu_count()} CPUs, {load()}", flush=True)
    passes = []
    for index in range(args.runs):
        passes.append(measure(args.how, env, home, tag, root / f"pass-{index}.log"))
        print(f"pass {index}: {passes[-1]['wall']:.1f}s wall, {load()}", flush=True)
    print("\n".join(stage_table(passes)))
    if args.root is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
