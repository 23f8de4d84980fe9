"""``edugraph run`` (``make run``): the job this project exists for, in one command.

It checks that the ontology remote answers (failing at once, naming ``EDUGRAPH_ONTOLOGY_REPO``, when it does not),
adds a partition per release tag (as ``edugraph releases sync`` does), then materializes the whole graph for the
newest release in one run of the persistent Dagster instance (``$DAGSTER_HOME``, default: the current directory,
whose dagster.yaml the repository root has), so that the run shows up in ``dagster dev``. The selection is
`full_pipeline_job`'s plus ``base_model``, without the Hub publications whose repository is not configured.
The steps run in this process (one process started instead of one per step; the training steps still run
through the training launcher); the printed progress is read from the run's event log (`progress.py`). What the
assets reuse (an unchanged tiny base, adapters trained on the same inputs, an unchanged merge) they report as
``reused``; a second run with nothing changed trains nothing.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from edugraph_pipeline import settings
from edugraph_pipeline.defs.model.assets import GATE_CHECK
from edugraph_pipeline.defs.ontology.resources import OntologyRepository
from edugraph_pipeline.defs.partitions import ontology_partitions, sync_release_partitions
from edugraph_pipeline.defs.pipeline.jobs import full_pipeline_job
from edugraph_pipeline.defs.pipeline.progress import ProgressPrinter, RunTimeline, clock
from edugraph_pipeline.defs.pipeline.summary import print_summary
from edugraph_pipeline.defs.resources import HUB_REPO_VARIABLES
from edugraph_pipeline.publishing import HubTargets
from edugraph_pipeline.releases import ReleaseSourceError
from edugraph_pipeline.storage import layout, open_store

ONTOLOGY_REPO_VARIABLE = "EDUGRAPH_ONTOLOGY_REPO"
RUN_TAG, RUN_TAG_VALUE = "edugraph/launched_by", "edugraph run"  # marks the runs of this command in the UI
PID_TAG, HOST_TAG = "edugraph/pid", "edugraph/host"  # the process running it: gone means the run was killed
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
# The console logger prints every engine event at DEBUG; this command prints its own progress from the event log,
# which keeps every event whatever the console shows.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
OFFLINE_HINT = (
    f"offline, point {ONTOLOGY_REPO_VARIABLE} at a local copy of the releases: "
    ".venv/bin/python -m edugraph_pipeline_tests.kit.remotes ../shared/ontology-releases /tmp/edugraph-ontology && "
    f"export {ONTOLOGY_REPO_VARIABLE}=/tmp/edugraph-ontology"
)


class RunRefused(RuntimeError):
    """Something the run needs is missing or wrong; the message names the setting and what to do."""


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, else the current directory (the repository root, where `make run` runs, has the
    dagster.yaml; instance state goes to storage/ and history/ beside it, git-ignored)."""
    return Path(settings.other_tool("DAGSTER_HOME") or Path.cwd()).expanduser().resolve()


def hub_assets_to_skip() -> set[str]:
    """The publication assets whose Hub repository is not configured (they would publish nothing)."""
    targets = HubTargets.of(*(settings.setting(name) for name in HUB_REPO_VARIABLES))
    skipped = {layout.GGUF_MODEL, layout.GGUF_PUBLICATION}  # need a llama.cpp build: materialized on their own
    if not targets.model_repo:
        skipped.add(layout.HF_PUBLICATION)
    if not targets.knowledge_repo:
        skipped.add(layout.KNOWLEDGE_DATASET_PUBLICATION)
    if not targets.worksheets_repo:
        skipped.add(layout.WORKSHEET_DATASET_PUBLICATION)
    return skipped


def whole_graph(definitions: dg.Definitions) -> list[dg.AssetKey]:
    """`full_pipeline_job`'s assets plus `base_model`, minus the publications with no repository configured."""
    job_assets = definitions.resolve_job_def(full_pipeline_job.name).asset_layer.selected_asset_keys
    keys = set(job_assets) | {dg.AssetKey(layout.BASE_MODEL)}
    skipped = hub_assets_to_skip()
    return sorted((key for key in keys if key.to_user_string() not in skipped), key=lambda key: key.to_user_string())


def release_tags(repository: OntologyRepository) -> list[str]:
    """The remote's release tags, oldest first; fails at once, naming the setting, when it cannot be read."""
    try:
        tags = [tag.name for tag in repository.list_releases()]
    except ReleaseSourceError as error:
        raise RunRefused(
            f"{ONTOLOGY_REPO_VARIABLE}={repository.display_remote} cannot be reached: {error}; {OFFLINE_HINT}"
        ) from error
    if not tags:
        raise RunRefused(f"{ONTOLOGY_REPO_VARIABLE}={repository.display_remote} has no release tags (vX.Y.Z)")
    return tags


def setting_error(failure: BaseException) -> BaseException | None:
    """The refusal or bad setting behind `failure` (the code location's loader wraps a resource's ValueError, which
    names the variable, in its own error), or None for anything else."""
    while failure is not None:
        if isinstance(failure, (RunRefused, ValueError)):
            return failure
        failure = failure.__cause__ or failure.__context__
    return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def release_killed_runs(instance: dg.DagsterInstance) -> list[str]:
    """Earlier runs of this command on this machine whose process is gone (killed, or the machine restarted)
    still count as running and still hold the `gpu-training` pool's slot, which would block this run's training
    steps forever: mark them failed and free their slots. Returns their ids."""
    released = []
    for run in instance.get_runs(dg.RunsFilter(tags={RUN_TAG: RUN_TAG_VALUE}, statuses=UNFINISHED)):
        pid, host = run.tags.get(PID_TAG, ""), run.tags.get(HOST_TAG)
        if host != socket.gethostname() or not pid.isdigit() or process_alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process that ran it (pid {pid}) is gone: it was killed")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        released.append(run.run_id)
    return released


def run_pipeline(
    load_definitions: Callable[[], dg.Definitions],
    write: Callable[[str], None] = print,
    error: Callable[[str], None] | None = None,
) -> int:
    """Build the whole graph of `load_definitions()` (the code location: `definitions.defs`) for the newest
    release and print the summary; 0 on success, 1 when a step failed or the model failed its evaluation gate, 2
    when the run could not start (the message names what to fix)."""
    error = error or (lambda line: print(line, file=sys.stderr, flush=True))
    home = dagster_home()
    try:
        repository = OntologyRepository.from_settings()
        tags = release_tags(repository)  # first: an unreachable remote fails before anything is written
        definitions = load_definitions()  # binds the resources from the settings: a bad setting fails here, named
    except Exception as refused:  # noqa: BLE001 - only our own refusals and bad settings are reported, see below
        cause = setting_error(refused)
        if cause is None:
            raise
        error(f"error: {cause}")
        return 2
    home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run_id in release_killed_runs(instance):
            write(f"run {run_id} of an earlier `edugraph run` was killed: marked failed, its pool slot freed")
        added = sync_release_partitions(instance, tags)  # as `edugraph releases sync`
        # The newest release is the last partition: the one the model assets learn from (`newest_release_dep`).
        tag = instance.get_dynamic_partitions(ontology_partitions.name)[-1]
        selection = whole_graph(definitions)
        write(
            f"edugraph run: ontology {tag} (newest of {len(tags)} releases of {repository.display_remote}"
            f"{f'; {len(added)} new partition(s)' if added else ''}), profile {settings.setting('EDUGRAPH_MODEL')}, "
            f"run mode {settings.setting('EDUGRAPH_RUN_MODE')}, launcher {settings.setting('EDUGRAPH_TRAINING_LAUNCHER')}"
            f", content {settings.setting('EDUGRAPH_CONTENT_SOURCE')}"
        )
        write(f"Dagster instance {home} (the run shows in `dagster dev`); {len(selection)} assets: "
              f"{', '.join(key.to_user_string() for key in selection)}")
        timeline = execute(definitions, instance, tag, selection, write)
        return report(timeline, instance=instance, home=home, tag=tag, selection=selection, write=write, error=error)


def execute(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    tag: str,
    selection: list[dg.AssetKey],
    write: Callable[[str], None],
) -> RunTimeline:
    """One run of the implicit asset job (what `dagster asset materialize` runs) in this process, its progress
    printed as it goes; returns its timeline."""
    run_id = str(uuid.uuid4())
    job = definitions.resolve_implicit_global_asset_job_def()
    with ProgressPrinter(instance, run_id, write) as progress, warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # Dagster's own notes on its Pipes internals
        job.execute_in_process(
            run_config=QUIET_CONSOLE,
            instance=instance,
            partition_key=tag,
            asset_selection=selection,
            run_id=run_id,
            tags={
                **full_pipeline_job.tags,  # the GPU tag: queued runs that train wait for this one
                RUN_TAG: RUN_TAG_VALUE,
                PID_TAG: str(os.getpid()),
                HOST_TAG: socket.gethostname(),
            },
            raise_on_error=False,
        )
    return progress.timeline


def report(
    timeline: RunTimeline,
    *,
    instance: dg.DagsterInstance,
    home: Path,
    tag: str,
    selection: list[dg.AssetKey],
    write: Callable[[str], None],
    error: Callable[[str], None],
) -> int:
    """The summary of a run that built and evaluated the model (its gate may have failed), or what failed."""
    evaluation = timeline.steps.get(layout.MODEL_EVALUATION)
    gate_failed = evaluation is not None and evaluation.checks.get(GATE_CHECK) is False
    failed = [t for t in timeline.steps.values() if t.outcome == "failed" and not (t is evaluation and gate_failed)]
    if failed or not (evaluation and evaluation.materialized):
        for timing in failed:
            error(f"error: {timing.step} failed: {timing.failure}")
        error(f"error: run {timeline.run_id} failed after {clock(timeline.seconds or 0)}; its events: "
              f"DAGSTER_HOME={home} dagster dev, then the run's page")
        return 1
    print_summary(
        write,
        instance=instance,
        home=home,
        store=open_store(settings.data_location(), cache_dir=settings.cache_dir()),
        tag=tag,
        assets=[key.to_user_string() for key in selection],
        timeline=timeline,
    )
    if gate_failed:
        error(f"error: the merged model failed its evaluation gate ({GATE_CHECK}, table above): it is built, but "
              "publication refuses it")
        return 1
    return 0
