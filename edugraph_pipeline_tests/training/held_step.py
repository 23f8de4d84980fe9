"""A real training step that holds still after its first checkpoint, so a test can SIGKILL it at a known step.

``python -m edugraph_pipeline_tests.training.held_step JOB.json`` runs the job exactly as the training entry point
does (`entrypoint.run_job`: the real stage, its real callbacks, checkpoints on disk), printing its log lines. The
first ``checkpoint saved at step N`` line is printed once the Trainer has written that checkpoint completely; the
step then prints ``held after checkpoint-N`` and sleeps inside the training loop, where the test kills it. Without
the hold a kill would race the next save. A step that is never killed gives up after `HOLD_SECONDS` (exit 3), so a
broken test leaves no process behind.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from edugraph_pipeline.training.entrypoint import run_job
from edugraph_pipeline.training.job import TrainingJob

HOLD_SECONDS = 300
_SAVED = re.compile(r"checkpoint saved at step (\d+)")


def log_and_hold(message: str) -> None:
    print(message, flush=True)
    saved = _SAVED.fullmatch(message)
    if saved:
        print(f"held after checkpoint-{saved.group(1)}", flush=True)
        time.sleep(HOLD_SECONDS)
        print(f"never killed: gave up after {HOLD_SECONDS} s", flush=True)
        sys.exit(3)


if __name__ == "__main__":
    job = TrainingJob.from_dict(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
    run_job(job, log_fn=log_and_hold)
    sys.exit("finished without a checkpoint to hold at: the job's save_steps must be below its max_steps")
