"""Fault injection for ``test_faults.py``: a callback that ends its own process at a chosen point.

Set ``FAULT=<point>:<n>[:<signal>]`` in the environment of a ``fit`` that adds
``--trainer.callbacks+=faults.FaultInjector`` (with this folder on ``PYTHONPATH``):

- ``train_step:N``: after training step ``N``, before that step's checkpoint would be written;
- ``after_checkpoint:N``: at the start of the step after step ``N``, whose checkpoint was written;
- ``val_batch:N``: at the ``N``-th validation batch of the fit (the sanity check not counted);
- ``epoch_start:N``: at the start of epoch ``N``, right after the previous epoch's checkpoint.

``signal`` is ``KILL`` (default: nothing can clean up), ``TERM`` (a scheduler's preemption) or
``INT`` (Ctrl+C). ``FAULT_CLOCK=<file>`` records when the signal was sent. ``RankReport`` lets each
DDP rank say what it trained with.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

POINTS = ("train_step", "after_checkpoint", "val_batch", "epoch_start")


class FaultInjector(Callback):
    def __init__(self) -> None:
        point, count, *name = os.environ["FAULT"].split(":")
        if point not in POINTS:
            raise ValueError(f"FAULT point {point!r} is not one of {', '.join(POINTS)}.")
        self.point, self.count = point, int(count)
        self.signal = getattr(signal, f"SIG{name[0] if name else 'KILL'}")
        self.val_batches = 0
        self.fired = False

    def _fire(self, point: str, count: int) -> None:
        if not self.fired and point == self.point and count == self.count:
            self.fired = True
            if "FAULT_CLOCK" in os.environ:  # when the signal was sent, for the signal-to-exit time
                with open(os.environ["FAULT_CLOCK"], "w", encoding="utf-8") as clock:
                    clock.write(str(time.time()))
            os.kill(os.getpid(), self.signal)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._fire("train_step", trainer.global_step)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._fire("after_checkpoint", trainer.global_step)

    def on_validation_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking:
            self.val_batches += 1
            self._fire("val_batch", self.val_batches)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fire("epoch_start", trainer.current_epoch)


class RankReport(Callback):
    """Each rank writes what it trained with to ``RANK_REPORT_DIR/rank<N>.json``: the LR, a weight checksum."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        weights = sum(float(p.detach().double().abs().sum()) for p in pl_module.parameters())
        report = {"rank": trainer.global_rank, "world_size": trainer.world_size,
                  "lr": trainer.optimizers[0].param_groups[0]["lr"], "weights": weights, "steps": trainer.global_step}
        folder = os.environ["RANK_REPORT_DIR"]
        with open(os.path.join(folder, f"rank{trainer.global_rank}.json"), "w", encoding="utf-8") as file:
            json.dump(report, file)
