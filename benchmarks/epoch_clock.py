"""A callback for benchmarks: append each training epoch's wall seconds (validation excluded) to ``$EPOCH_CLOCK_FILE``.

Added from the command line (``--trainer.callbacks+=epoch_clock.EpochClock`` with this folder on
``PYTHONPATH``). An epoch is timed from its first batch to its last batch's end, so the LR sweep,
word vectors and validation are not in it.
"""

from __future__ import annotations

import json
import os
import time

from lightning.pytorch import Callback


class EpochClock(Callback):
    def __init__(self) -> None:
        self.start = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 == trainer.num_training_batches and self.start is not None and os.environ.get("EPOCH_CLOCK_FILE"):
            with open(os.environ["EPOCH_CLOCK_FILE"], "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"epoch": trainer.current_epoch, "seconds": time.perf_counter() - self.start,
                                         "batches": batch_idx + 1}) + "\n")
            self.start = None
