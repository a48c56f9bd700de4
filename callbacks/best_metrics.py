"""The best epoch's metrics, the ones the best checkpoint holds, in the run summary (T57).

Loggers keep the *last* value of every metric as the run's summary, so a W&B run that early
stopping ended three epochs after its best shows worse numbers than the checkpoint it kept.
``BestMetrics`` notes every epoch's metrics; when fitting ends it finds the epoch of the
monitored ``ModelCheckpoint``'s best score and puts that epoch's metrics into the W&B summary
under their own names (``val/acc`` is the best epoch's), the last epoch's values under
``final/…``, and writes both to ``best_metrics.json`` in the run directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

from .reporting import report_summary
from .wandb_io import run_directory, write_report


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


def best_entry(history: Sequence[tuple[int, Mapping[str, float]]], monitor: str,
               score: float) -> Optional[tuple[int, Mapping[str, float]]]:
    """The first ``(epoch, metrics)`` of ``history`` whose ``monitor`` value is ``score`` (the checkpoint's best).

    Example:
        >>> best_entry([(0, {"val/acc": 0.7}), (1, {"val/acc": 0.8}), (2, {"val/acc": 0.75})], "val/acc", 0.8)
        (1, {'val/acc': 0.8})
    """
    for epoch, metrics in history:
        value = metrics.get(monitor)
        if value is not None and math.isclose(value, score, rel_tol=1e-6, abs_tol=1e-9):
            return epoch, metrics
    return None


def monitored_checkpoint(trainer: Trainer) -> Optional[ModelCheckpoint]:
    """The first ``ModelCheckpoint`` that keeps the best epoch (has a ``monitor``), not ``last.ckpt``'s."""
    return next((cb for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)), None)


class BestMetrics(Callback):
    """Put the metrics of the best checkpoint's epoch into the run summary (W&B and ``best_metrics.json``).

    Keeps every epoch's metrics (at the end of each training epoch, validation included) and, when
    fitting ends, picks the epoch whose monitored value is the ``best_model_score`` of the first
    ``ModelCheckpoint`` with a ``monitor`` (``monitored_checkpoint``). Without a monitored checkpoint
    it does nothing. The generated CLI adds it to every run.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.BestMetrics
    """

    def __init__(self) -> None:
        self.history: list[tuple[int, dict[str, float]]] = []
        self.best: dict[str, float] = {}
        self.best_epoch: Optional[int] = None

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.history.append((trainer.current_epoch, _scalars(trainer.callback_metrics)))

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        checkpoint = monitored_checkpoint(trainer)
        monitor, score = getattr(checkpoint, "monitor", None), getattr(checkpoint, "best_model_score", None)
        found = best_entry(self.history, monitor, float(score)) if monitor and score is not None else None
        if found is None:
            return
        self.best_epoch, self.best = found[0], dict(found[1])
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero:
            return
        values = summary_values(self.best, _scalars(trainer.callback_metrics), self.best_epoch)
        write_report(trainer, folder, "best_metrics.json", json.dumps(values, indent=1, sort_keys=True))
        report_summary(trainer, values, folder)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": [[epoch, dict(metrics)] for epoch, metrics in self.history]}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [(int(epoch), dict(metrics)) for epoch, metrics in state_dict.get("history", [])]


__all__ = ["BestMetrics", "best_entry", "summary_values"]
