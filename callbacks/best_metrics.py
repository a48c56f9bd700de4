"""The best epoch's metrics, the ones the best checkpoint holds, in the run summary (T57).

Loggers keep the *last* value of every metric as the run's summary, so a W&B run that early
stopping ended three epochs after its best shows worse numbers than the checkpoint it kept.
``BestMetrics`` follows the monitored ``ModelCheckpoint``: at the end of each epoch in which it
saved a new best, it notes the epoch's metrics; when fitting ends it puts them into the W&B
summary under their own names (``val/acc`` is the best epoch's), the last epoch's values under
``final/…``, and writes both to ``best_metrics.json`` in the run directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from .wandb_io import find_wandb_logger, run_directory, write_report


def summary_values(best: Mapping[str, float], final: Mapping[str, float], best_epoch: Optional[int]) -> dict[str, Any]:
    """The summary entries: ``best`` under their names, ``final`` under ``final/<name>``, and ``best/epoch``.

    Example:
        >>> summary_values({"val/acc": 0.79}, {"val/acc": 0.77}, 3)
        {'val/acc': 0.79, 'final/val/acc': 0.77, 'best/epoch': 3}
    """
    values: dict[str, Any] = dict(best)
    values.update({f"final/{key}": value for key, value in final.items()})
    if best_epoch is not None:
        values["best/epoch"] = best_epoch
    return values


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number) and not key.endswith("_step"):  # epoch-level values only
            out[key] = number
    return out


class BestMetrics(Callback):
    """Put the metrics of the best checkpoint's epoch into the run summary (W&B and ``best_metrics.json``).

    Follows ``trainer.checkpoint_callback`` (the first ``ModelCheckpoint``) and its ``monitor``;
    without a monitored checkpoint it does nothing. The generated CLI adds it to every run.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.BestMetrics
    """

    def __init__(self) -> None:
        self.best: dict[str, float] = {}
        self.best_epoch: Optional[int] = None
        self._best_path = ""

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        checkpoint = trainer.checkpoint_callback
        path = getattr(checkpoint, "best_model_path", "") if getattr(checkpoint, "monitor", None) else ""
        if path and path != self._best_path:  # the validation of this epoch saved a new best
            self._best_path = path
            self.best, self.best_epoch = _scalars(trainer.callback_metrics), trainer.current_epoch

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.best or trainer.sanity_checking:
            return
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero:
            return
        values = summary_values(self.best, _scalars(trainer.callback_metrics), self.best_epoch)
        write_report(trainer, folder, "best_metrics.json", json.dumps(values, indent=1, sort_keys=True))
        logger = find_wandb_logger(trainer)
        if logger is not None:
            summary = logger.experiment.summary
            for key, value in values.items():
                summary[key] = value

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"best": dict(self.best), "best_epoch": self.best_epoch, "best_path": self._best_path}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = dict(state_dict.get("best", {}))
        self.best_epoch = state_dict.get("best_epoch")
        self._best_path = state_dict.get("best_path", "")


__all__ = ["BestMetrics", "summary_values"]
