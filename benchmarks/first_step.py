"""A callback for benchmarks: write the wall-clock time of the first training step to ``$FIRST_STEP_FILE``.

Added to a run from the command line (``--trainer.callbacks+=first_step.FirstStepClock`` with this
folder on ``PYTHONPATH``), so a benchmark measures the time from the command's start to the first
step of training: start-up, word vectors, the LR sweep and the pre-flight checks included.
"""

from __future__ import annotations

import os
import time

from lightning.pytorch import Callback


class FirstStepClock(Callback):
    def __init__(self) -> None:
        self.written = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.written and os.environ.get("FIRST_STEP_FILE"):
            with open(os.environ["FIRST_STEP_FILE"], "w", encoding="utf-8") as handle:
                handle.write(repr(time.time()))
            self.written = True
