"""Say early how long an epoch will take, when it is long (long documents on a CPU).

A user whose first epoch will take an hour should learn it in the first minute, with what
shortens it, not after the hour. ``EpochEstimate`` times the first training steps of a fit and
prints one line when the projected epoch is long.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from .notices import notice


def epoch_seconds(step_times: list[float], batches: float) -> Optional[float]:
    """Projected seconds for an epoch of ``batches`` steps from the durations of steps after the first.

    The median step is used: the first steps of a run include one-off work (allocations, a
    checkpoint being written). ``None`` without timed steps or with an unknown epoch length.

    Example:
        >>> epoch_seconds([0.5, 0.4, 9.0, 0.5], 100)
        50.0
    """
    if not step_times or not math.isfinite(batches):
        return None
    ordered = sorted(step_times)
    return ordered[len(ordered) // 2] * batches


class EpochEstimate(Callback):
    """Print the projected time of a training epoch after its first steps, when it exceeds ``min_seconds``.

    Times ``steps`` training steps (from batch start to batch end, after a first, untimed one)
    in the first epoch this process trains, multiplies the median by the epoch's batches and
    prints one line: the estimate, the step time and what shortens an epoch (``data.max_length``,
    ``model.downsample`` (T44), the number of batches). Rank zero speaks.

    Args:
        steps: training steps to time.
        min_seconds: say nothing when the projected epoch is shorter.

    Raises:
        ValueError: ``steps`` < 1 or ``min_seconds`` < 0.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.EpochEstimate
              init_args:
                steps: 10
                min_seconds: 120   # speak only about epochs longer than 2 minutes
    """

    def __init__(self, steps: int = 10, min_seconds: float = 120.0) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        if min_seconds < 0:
            raise ValueError(f"min_seconds must be >= 0, got {min_seconds}.")
        self.steps = steps
        self.min_seconds = min_seconds
        self.estimate: Optional[float] = None  # seconds per epoch, once measured
        self._times: list[float] = []
        self._start: Optional[float] = None
        self._seen = 0
        self._done = False

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._times, self._start, self._seen, self._done = [], None, 0, trainer.fast_dev_run

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._done:
            self._start = time.perf_counter()

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._done or self._start is None:
            return
        self._seen += 1
        if self._seen > 1:  # the first step allocates and warms up
            self._times.append(time.perf_counter() - self._start)
        if len(self._times) >= self.steps or batch_idx + 1 >= trainer.num_training_batches:
            self._done = True
            self._report(trainer)

    def _report(self, trainer: Trainer) -> None:
        batches = trainer.num_training_batches
        self.estimate = epoch_seconds(self._times, batches)
        if self.estimate is None or self.estimate < self.min_seconds:
            return
        minutes = self.estimate / 60
        notice(__name__, f"EpochEstimate: an epoch of {int(batches)} batches will take about {minutes:.1f} min "
                         f"({self.estimate / batches:.2g} s per step, timed over {len(self._times)} steps). Shorter: "
                         "data.max_length, model.downsample 4 (T44: a strided convolution before the RNN), or "
                         "trainer.limit_train_batches.", logging.INFO)
