"""Checkpoints on a clock as well as every ``save_steps``: a spot VM can be taken away at any minute, and
``save_steps=100`` is 13 min of a 4B on an L4 (25-30 min of an 8B), all of it lost on a preemption.

`timed_saves(minutes)` is a `TrainerCallback` that asks the Trainer for a save (``control.should_save``) at the end
of the first optimizer step that finds `minutes` or more passed since the last save (or since training started);
any save, timed or by steps, restarts the clock. ``EDUGRAPH_CHECKPOINT_MINUTES`` (default 10) sets the interval;
0 turns it off. A save costs the adapter and optimizer state only (LoRA: megabytes), so a short interval is cheap.
"""

from __future__ import annotations

import time


def timed_saves(minutes: float, clock=time.monotonic):
    """The callback (None for `minutes` <= 0: no timed saves). `clock`: seconds, monotonic."""
    if minutes <= 0:
        return None
    from transformers import TrainerCallback

    interval = minutes * 60.0

    class TimedSaves(TrainerCallback):
        def __init__(self):
            self.last_save = clock()
            self.timed_steps: list[int] = []  # steps saved because of the clock (for the metrics)

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_save = clock()

        def on_step_end(self, args, state, control, **kwargs):
            if not control.should_save and clock() - self.last_save >= interval:
                control.should_save = True
                self.timed_steps.append(int(state.global_step))
            return control

        def on_save(self, args, state, control, **kwargs):
            self.last_save = clock()

    return TimedSaves()
