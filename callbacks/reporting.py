"""Where the callbacks' findings go: every Lightning logger, and always a file in the run folder.

W&B (the default) gets the rich forms: the run summary, alerts and tables. Any other logger
(TensorBoard, CSV, MLflow, ...) gets the numbers as scalars (``log_metrics``; ``True``/``False`` as
1/0) and, when it can show text (TensorBoard's ``add_text``), the words. Whatever the loggers, the
values land in ``summary.json`` and the alerts in ``alerts.jsonl`` in the run folder, so a run
without a logger that shows them still keeps them. Call these on every rank: rank zero writes.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import WandbLogger

from .wandb_io import find_wandb_logger, run_directory, write_atomically

SUMMARY_FILE = "summary.json"
ALERTS_FILE = "alerts.jsonl"
LEVELS = ("INFO", "WARN", "ERROR")


def _scalar(value: Any) -> Optional[float]:
    """``value`` as a finite float when it is a number or a bool, else ``None``."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    return None


def _text_sink(logger: Any) -> Any:
    """The logger's ``add_text`` (TensorBoard's ``SummaryWriter``), or ``None``."""
    experiment = getattr(logger, "experiment", None)
    return getattr(experiment, "add_text", None)


def _folder(trainer: Trainer, folder: Optional[Path]) -> Optional[Path]:
    """The run folder to write into (``folder`` when the caller has it), or ``None``: no logger, so no run
    of its own, or ``fast_dev_run``, which saves nothing."""
    if not trainer.loggers or trainer.fast_dev_run:
        return None
    return folder if folder is not None else run_directory(trainer)  # on every rank: it may broadcast


def report_summary(trainer: Trainer, values: dict[str, Any], folder: Optional[Path] = None) -> None:
    """Record ``values`` as the run's result: the W&B summary, other loggers' scalars and text, ``summary.json``.

    Without ``folder`` (the run folder), call it on every rank."""
    folder = _folder(trainer, folder)
    if not trainer.is_global_zero or not values:
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            summary = logger.experiment.summary
            for key, value in values.items():
                summary[key] = value
            continue
        scalars = {key: number for key, number in ((k, _scalar(v)) for k, v in values.items()) if number is not None}
        if scalars:
            logger.log_metrics(scalars, step=trainer.global_step)
        add_text = _text_sink(logger)
        if add_text is not None:
            for key, value in values.items():
                if key not in scalars:
                    add_text(key, json.dumps(value, default=str) if not isinstance(value, str) else value,
                             trainer.global_step)
    if folder is not None:
        path = folder / SUMMARY_FILE
        merged = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        merged.update(json.loads(json.dumps(values, default=str)))
        text = json.dumps(merged, indent=1, sort_keys=True)
        write_atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"))


def report_alert(trainer: Trainer, title: str, text: str, level: str = "WARN", folder: Optional[Path] = None) -> None:
    """Raise an alert: a W&B alert (e-mail/Slack when set up), other loggers' text, a line of ``alerts.jsonl``.

    Without ``folder`` (the run folder), call it on every rank."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}.")
    folder = _folder(trainer, folder)
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.alert(title=title[:63], text=text, level=level, wait_duration=1)
            continue
        add_text = _text_sink(logger)
        if add_text is not None:
            add_text(f"alerts/{title}", f"{level}: {text}", trainer.global_step)
    if folder is not None:
        path = folder / ALERTS_FILE
        before = path.read_text(encoding="utf-8") if path.is_file() else ""
        line = json.dumps({"step": trainer.global_step, "epoch": trainer.current_epoch, "level": level,
                           "title": title, "text": text})
        write_atomically(path, lambda partial: partial.write_text(before + line + "\n", encoding="utf-8"))


def wandb_media(trainer: Trainer, payload: dict[str, Any]) -> None:
    """Log rich media (tables, images; built by the caller with ``wandb``) to W&B only, without a step of its own.

    Callers save the same content as a file in the run folder first: other loggers read that.
    """
    logger = find_wandb_logger(trainer)
    if logger is not None and trainer.is_global_zero:
        logger.experiment.log(payload, commit=False)


__all__ = ["ALERTS_FILE", "SUMMARY_FILE", "report_alert", "report_summary", "wandb_media"]
