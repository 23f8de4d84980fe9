"""A training step killed with SIGKILL (no exception handler, no `finally`, no atexit: what a preempted or OOM-killed
machine does) resumes from its last checkpoint on disk and ends where an uninterrupted run ends.

Each run is a real subprocess on the tiny profile in test mode on the CPU: the uninterrupted one (run alongside the
killed one) and the resumed one are ``python -m edugraph_pipeline.training.entrypoint --job JOB``; the killed one is
the same job through `held_step.py`, which holds still after its first checkpoint so the kill lands at step 2 and
not during the next save.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

MAX_STEPS, SAVE_STEPS = 4, 2
TIMEOUT_S = 300


def _job_file(stage_cfg, folder: Path) -> Path:
    from edugraph_pipeline.training.job import TrainingJob

    cfg = stage_cfg("worksheet", max_steps=MAX_STEPS, save_steps=SAVE_STEPS)
    job = TrainingJob(stage="worksheet", mode="test", config=cfg, log_every=1)
    placed = job.placed(output_dir=str(folder / "out"), work_dir=str(folder / "work"))
    Path(placed.output_dir).mkdir(parents=True)
    job_file = folder / "job.json"
    job_file.write_text(json.dumps(placed.to_dict()), encoding="utf-8")
    return job_file


def _start_entrypoint(job_file: Path, name: str) -> tuple[subprocess.Popen, Path]:
    """The real entry point on `job_file`, its stdout and stderr in ``<name>.out`` / ``<name>.err`` (files, not
    pipes: nobody reads them while it runs)."""
    logs = job_file.parent / name
    with open(f"{logs}.out", "w") as stdout, open(f"{logs}.err", "w") as stderr:
        step = subprocess.Popen(
            [sys.executable, "-m", "edugraph_pipeline.training.entrypoint", "--job", str(job_file)],
            stdout=stdout, stderr=stderr,
        )
    return step, logs


def _finished(started: tuple[subprocess.Popen, Path]) -> tuple[str, str]:
    step, logs = started
    try:
        step.wait(timeout=TIMEOUT_S)
    finally:
        if step.poll() is None:
            step.kill()
            step.wait()
    stdout, stderr = (Path(f"{logs}.{kind}").read_text() for kind in ("out", "err"))
    assert step.returncode == 0, stdout[-2000:] + stderr[-3000:]
    return stdout, stderr


def _kill_after_first_checkpoint(job_file: Path) -> list[str]:
    """Start the held step, read its log until its first checkpoint is saved, SIGKILL its process group."""
    step = subprocess.Popen(
        [sys.executable, "-m", "edugraph_pipeline_tests.training.held_step", str(job_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    # a step that hangs is killed all the same: its output ends and the test fails on what it printed
    watchdog = threading.Timer(TIMEOUT_S, os.killpg, (step.pid, signal.SIGKILL))
    watchdog.start()
    lines: list[str] = []
    try:
        for line in step.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("held after checkpoint-"):
                break
        assert lines and lines[-1] == f"held after checkpoint-{SAVE_STEPS}", "\n".join(lines[-40:])
        os.killpg(step.pid, signal.SIGKILL)  # the step and any child it started
        assert step.wait(timeout=30) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        if step.poll() is None:
            os.killpg(step.pid, signal.SIGKILL)
            step.wait(timeout=30)
        step.stdout.close()
    return lines


def test_a_sigkilled_step_resumes_from_its_checkpoint(stage_cfg, tmp_path):
    from edugraph_pipeline.training.sft import CHECKPOINT_DIR

    # The run to compare with goes on alongside the one that is killed (both from step 0, both seeded alike).
    uninterrupted_step = _start_entrypoint(_job_file(stage_cfg, tmp_path / "uninterrupted"), "run")
    folder = tmp_path / "killed"
    job_file = _job_file(stage_cfg, folder)
    try:
        lines = _kill_after_first_checkpoint(job_file)
    finally:
        _finished(uninterrupted_step)
    uninterrupted = json.loads((tmp_path / "uninterrupted" / "out" / "job_result.json").read_text())
    assert (uninterrupted["steps"], uninterrupted["resumed_from_step"]) == (MAX_STEPS, None)
    assert f"training started: {MAX_STEPS} steps (from step 0)" in lines
    assert f"checkpoint saved at step {SAVE_STEPS}" in lines
    # Killed mid-run: one complete checkpoint, no result of any kind.
    checkpoints = folder / "work" / CHECKPOINT_DIR
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"checkpoint-{SAVE_STEPS}"]
    state = json.loads((checkpoints / f"checkpoint-{SAVE_STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == SAVE_STEPS
    assert sorted(p.name for p in (folder / "out").iterdir()) == []

    stdout, stderr = _finished(_start_entrypoint(job_file, "resumed"))  # the job again, as a retry starts it
    assert f"training started: {MAX_STEPS} steps (from step {SAVE_STEPS})" in stdout
    assert f"resuming from {checkpoints / f'checkpoint-{SAVE_STEPS}'} (step {SAVE_STEPS})" in stderr
    result = json.loads((folder / "out" / "job_result.json").read_text())
    assert (result["resumed_from_step"], result["steps"], result["steps_this_run"]) == (SAVE_STEPS, MAX_STEPS, 2)
    # the history of steps 1-2 comes back with the checkpoint's trainer state, steps 3-4 are this run's
    assert [step for step, _ in result["loss_history"]] == list(range(1, MAX_STEPS + 1))
    final = json.loads((checkpoints / f"checkpoint-{MAX_STEPS}" / "trainer_state.json").read_text())
    assert final["global_step"] == MAX_STEPS

    # The resumed run ends where the uninterrupted one ends: the same loss at every step and the same adapter, byte
    # for byte (data_version hashes its safetensors): weights, optimizer, scheduler and RNG all came back.
    assert result["loss_history"] == uninterrupted["loss_history"]
    assert result["data_version"] == uninterrupted["data_version"]
