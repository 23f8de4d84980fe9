"""What a run is doing, read from the Dagster event log: live progress lines for `edugraph run`, and the per-asset
timings that it prints at the end and that bench/pipeline_time.py reports.

Reading the event log (rather than hooking the executor) works for any run, however it was launched, and shows
exactly what `dagster dev` shows: step starts and ends, materializations (with their `reused` flag), check
results, and the log lines of the steps, which include the training step's progress sent through Dagster Pipes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

EventType = dg.DagsterEventType
STEP_END = {EventType.STEP_SUCCESS, EventType.STEP_FAILURE, EventType.STEP_SKIPPED}


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class StepTiming:
    """One step (one asset, with its checks) of a run."""

    step: str
    started: float | None = None
    ended: float | None = None
    outcome: str = "not started"  # succeeded | failed | skipped | running | not started
    reused: bool | None = None  # the asset's `reused` metadata, where it reports one
    materialized: bool = False
    checks: dict[str, bool] = field(default_factory=dict)  # check name -> passed
    first_pipes_message: float | None = None  # when the step's Pipes process first spoke (training steps)
    failure: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started

    @property
    def startup_seconds(self) -> float | None:
        """From the step's start to its Pipes process's first message: launching and importing, no work yet."""
        if self.started is None or self.first_pipes_message is None:
            return None
        return self.first_pipes_message - self.started


@dataclass
class RunTimeline:
    """The steps of one run, in the order they started, and the run's own start and end."""

    run_id: str
    started: float | None = None
    ended: float | None = None
    steps: dict[str, StepTiming] = field(default_factory=dict)

    def step(self, key: str) -> StepTiming:
        return self.steps.setdefault(key, StepTiming(key))

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


# The training step's first Pipes line (training/entrypoint.py); anything before it is process start and imports.
PIPES_FIRST_LINE = "training job: stage"


def apply(timeline: RunTimeline, entry) -> str | None:
    """Fold one event log entry into `timeline`; returns the line to show for it, or None."""
    step = entry.step_key
    event_type = entry.dagster_event_type
    if event_type == EventType.RUN_START:
        timeline.started = entry.timestamp
    elif event_type in (EventType.RUN_SUCCESS, EventType.RUN_FAILURE, EventType.RUN_CANCELED):
        timeline.ended = entry.timestamp
    if step is None:
        return None
    timing = timeline.step(step)
    if event_type == EventType.STEP_START:
        timing.started, timing.outcome = entry.timestamp, "running"
        return f"> {step}"
    if event_type in STEP_END:
        timing.ended = entry.timestamp
        timing.outcome = {EventType.STEP_SUCCESS: "succeeded", EventType.STEP_FAILURE: "failed"}.get(
            event_type, "skipped"
        )
        if event_type == EventType.STEP_FAILURE:
            timing.failure = entry.get_dagster_event().step_failure_data.error.message.strip()
        took = f" ({clock(timing.seconds)})" if timing.seconds is not None else ""
        reused = ", reused" if timing.reused else ""
        return f"{'=' if timing.outcome == 'succeeded' else '!'} {step} {timing.outcome}{took}{reused}"
    if event_type == EventType.ASSET_MATERIALIZATION:
        timing.materialized = True
        reused = entry.asset_materialization.metadata.get("reused")
        if reused is not None:
            timing.reused = bool(getattr(reused, "value", reused))
        return None
    if event_type == EventType.ENGINE_EVENT and "blocked" in entry.user_message:
        return f"  {entry.user_message} (another run holds it; `dagster dev` shows which)"
    if event_type == EventType.ASSET_CHECK_EVALUATION:
        evaluation = entry.get_dagster_event().event_specific_data
        timing.checks[evaluation.check_name] = evaluation.passed
        return f"  check {evaluation.check_name}: {'passed' if evaluation.passed else 'FAILED'}"
    if not entry.is_dagster_event and entry.level >= logging.INFO:
        if PIPES_FIRST_LINE in entry.user_message and timing.first_pipes_message is None:
            timing.first_pipes_message = entry.timestamp
        return f"  {entry.user_message}"
    return None


def timeline_of(instance: dg.DagsterInstance, run_id: str) -> RunTimeline:
    """The whole timeline of a finished (or running) run."""
    timeline = RunTimeline(run_id)
    for record in instance.all_logs(run_id):
        apply(timeline, record)
    return timeline


class ProgressPrinter:
    """Follows a run's event log in a background thread and prints a line per step start and end, check result
    and step log line, each with the time since the printer started (the run may not exist yet when it starts)."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, write: Callable[[str], None], poll_s: float = 0.5):
        self.instance, self.write, self.poll_s = instance, write, poll_s
        self.timeline = RunTimeline(run_id)
        self._cursor: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="edugraph-run-progress", daemon=True)
        self.start = time.time()

    def __enter__(self) -> ProgressPrinter:
        self.start = time.time()
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self._drain()  # whatever the run wrote after the last poll

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._drain()

    def _drain(self) -> None:
        while True:
            page = self.instance.get_records_for_run(self.timeline.run_id, cursor=self._cursor, limit=200)
            for record in page.records:
                line = apply(self.timeline, record.event_log_entry)
                if line is not None:
                    self.write(f"[{clock(record.event_log_entry.timestamp - self.start):>5}] {line}")
            if page.records:
                self._cursor = page.cursor
            if not page.has_more:
                return
