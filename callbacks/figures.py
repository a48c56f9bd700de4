"""Figures people would rather look at than read: examples of each class, and the confusion matrix.

Both are PNG files in the run folder and images in W&B (``reporting.wandb_media``); the confusion
counts also go to ``confusion_test.json`` and, as a W&B confusion-matrix chart, to W&B. The pure
parts (``confusion_counts``, ``plot_confusion``) need no Trainer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from .contract import label_names
from .notices import notice
from .reporting import wandb_media
from .wandb_io import find_wandb_logger, run_directory, write_atomically, write_report


def confusion_counts(predicted: torch.Tensor, target: torch.Tensor, num_classes: int) -> list[list[int]]:
    """``counts[true][predicted]`` for class indices ``predicted`` and ``target``.

    Example:
        >>> confusion_counts(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2)
        [[1, 1], [0, 1]]
    """
    flat = target.long() * num_classes + predicted.long()
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).tolist()


def plot_confusion(counts: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    """Draw ``counts`` (rows: true class, columns: predicted) with row shares as colours; saved atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = len(labels)
    shares = [[n / max(1, sum(row)) for n in row] for row in counts]
    figure, axes = plt.subplots(figsize=(1.6 + 0.55 * size, 1.2 + 0.5 * size))
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(size), labels, rotation=45, ha="right")
    axes.set_yticks(range(size), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for row in range(size):
        for column in range(size):
            axes.text(column, row, str(counts[row][column]), ha="center", va="center",
                      color="white" if shares[row][column] > 0.5 else "black", fontsize=8)
    figure.tight_layout()
    try:
        return write_atomically(path, lambda partial: figure.savefig(partial, format="png", dpi=110))
    finally:
        plt.close(figure)


def save_figure(trainer: Trainer, figure: Any, path: Path, key: str) -> Path:
    """Write a matplotlib ``figure`` to ``path`` (PNG, atomically), close it, and log it to W&B as ``key`` (rank zero)."""
    import matplotlib.pyplot as plt

    try:
        write_atomically(path, lambda partial: figure.savefig(partial, format="png", dpi=110))
    finally:
        plt.close(figure)
    if find_wandb_logger(trainer) is not None:
        import wandb

        wandb_media(trainer, {key: wandb.Image(str(path))})
    return path


class DataExamples(Callback):
    """At fit start, save the data module's figure of training examples per class (T52: look at the data).

    A data module that draws one has ``example_figure(per_class)`` returning a matplotlib figure (the
    sequence task: a few series per class; the image task: images per class, augmented as trained on);
    for the others this callback does nothing. Saved as
    ``examples.png`` in the run folder and logged to W&B as ``data/examples``.

    Args:
        per_class: examples drawn per class.

    Example::

        trainer:
          callbacks:
            - class_path: <package>.callbacks.DataExamples
              init_args: {per_class: 3}
    """

    def __init__(self, per_class: int = 3) -> None:
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}.")
        self.per_class = per_class
        self.path: Optional[Path] = None

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        draw = getattr(trainer.datamodule, "example_figure", None)
        if not callable(draw) or not trainer.loggers or trainer.fast_dev_run:
            return
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero:
            return
        figure = draw(self.per_class)
        if figure is not None:
            self.path = save_figure(trainer, figure, folder / "examples.png", "data/examples")


class ConfusionMatrix(Callback):
    """After testing, the confusion matrix of the test split: ``confusion_test.png`` and ``.json``, and W&B.

    Reads the logits that the model's ``test_step`` returns (``{"logits": ...}``) and the batch's
    ``labels``; class names come from the data module (``labels``). Runs after ``test_after_fit`` and
    ``test``.

    Example::

        trainer:
          callbacks:
            - class_path: <package>.callbacks.ConfusionMatrix
    """

    def __init__(self) -> None:
        self._predicted: list[torch.Tensor] = []
        self._target: list[torch.Tensor] = []
        self.counts: Optional[list[list[int]]] = None
        self._warned = False

    @override
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._predicted, self._target = [], []

    @override
    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        logits = outputs.get("logits") if isinstance(outputs, dict) else None
        target = batch.get("labels") if isinstance(batch, dict) else None
        if logits is None or target is None:
            if not self._warned:
                self._warned = True
                notice(__name__, "ConfusionMatrix: test_step returned no `logits` (or the batch has no `labels`): "
                                 "no confusion matrix.")
            return
        self._predicted.append(logits.argmax(dim=-1).cpu())
        self._target.append(target.cpu())

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._predicted:
            return
        predicted = trainer.strategy.all_gather(torch.cat(self._predicted)).flatten().cpu()
        target = trainer.strategy.all_gather(torch.cat(self._target)).flatten().cpu()
        names = label_names(trainer) or [str(i) for i in range(int(max(predicted.max(), target.max())) + 1)]
        self.counts = confusion_counts(predicted, target, len(names))
        if not trainer.loggers or trainer.fast_dev_run:
            return
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero:
            return
        write_report(trainer, folder, "confusion_test.json", json.dumps({"labels": names, "counts": self.counts}))
        right = sum(self.counts[i][i] for i in range(len(names)))
        title = f"test split: {right} of {len(target)} right"
        try:
            path: Optional[Path] = plot_confusion(self.counts, names, folder / "confusion_test.png", title)
        except ImportError:
            path = None
        if find_wandb_logger(trainer) is None:
            return
        import wandb

        payload: dict[str, Any] = {"test/confusion_matrix": wandb.plot.confusion_matrix(
            y_true=target.tolist(), preds=predicted.tolist(), class_names=names)}
        if path is not None:
            payload["test/confusion"] = wandb.Image(str(path))
        wandb_media(trainer, payload)


def pick_examples(wrong: torch.Tensor, count: int) -> list[int]:
    """Up to ``count`` indices: the wrongly predicted first (up to half, or more when too few are right), then right ones.

    Example:
        >>> pick_examples(torch.tensor([False, True, False, True, True]), 4)
        [1, 3, 0, 2]
    """
    bad = wrong.nonzero().flatten().tolist()
    good = (~wrong).nonzero().flatten().tolist()
    take_bad = min(len(bad), max(count // 2, count - len(good)))
    return bad[:take_bad] + good[: count - take_bad]


class PredictionExamples(Callback):
    """After testing, test images with their predicted and true labels: ``predictions_test.png`` and W&B.

    Keeps the first ``count`` test examples it can show, half of them wrongly predicted where there
    are that many (captions in red), and asks the data module to draw them: a data module that can
    has ``draw_examples(batch, captions, wrong, title)`` (the image task); for the others this
    callback does nothing. Reads the logits ``test_step`` returns, like ``ConfusionMatrix``.

    Args:
        count: examples shown.

    Example::

        trainer:
          callbacks:
            - class_path: <package>.callbacks.PredictionExamples
              init_args: {count: 24}
    """

    def __init__(self, count: int = 24) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}.")
        self.count = count
        self.path: Optional[Path] = None
        self._kept: list[dict[str, Any]] = []
        self._wrong = 0

    @override
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._kept, self._wrong = [], 0

    @override
    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if not callable(getattr(trainer.datamodule, "draw_examples", None)) or not trainer.is_global_zero:
            return  # rank zero shows examples of its own shard
        logits = outputs.get("logits") if isinstance(outputs, dict) else None
        target = batch.get("labels") if isinstance(batch, dict) else None
        if logits is None or target is None:
            return
        predicted = logits.argmax(dim=-1).cpu()
        wrong = predicted != target.cpu()
        need_wrong = max(0, self.count // 2 - self._wrong)
        need_right = max(0, self.count - len(self._kept) - need_wrong)
        if not need_wrong and not need_right:
            return
        chosen = (wrong.nonzero().flatten().tolist()[:need_wrong]
                  + (~wrong).nonzero().flatten().tolist()[:need_right])
        for i in sorted(chosen)[: self.count]:
            row = {key: value[i: i + 1].detach().cpu() for key, value in batch.items() if isinstance(value, torch.Tensor)}
            self._kept.append({"row": row, "predicted": int(predicted[i]), "true": int(target[i]), "wrong": bool(wrong[i])})
            self._wrong += bool(wrong[i])

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not callable(getattr(trainer.datamodule, "draw_examples", None)) or not trainer.loggers \
                or trainer.fast_dev_run:
            return
        folder = run_directory(trainer)  # on every rank (only rank zero keeps examples): it may broadcast
        if not trainer.is_global_zero or not self._kept:
            return
        wrong = torch.tensor([k["wrong"] for k in self._kept])
        kept = [self._kept[i] for i in pick_examples(wrong, self.count)]
        names = label_names(trainer) or [str(i) for i in range(1 + max(max(k["predicted"], k["true"]) for k in kept))]
        batch = {key: torch.cat([k["row"][key] for k in kept]) for key in kept[0]["row"]}
        captions = [f"{names[k['predicted']]} (true {names[k['true']]})" if k["wrong"] else names[k["predicted"]]
                    for k in kept]
        figure = trainer.datamodule.draw_examples(  # type: ignore[union-attr]
            batch, captions, [k["wrong"] for k in kept],
            title=f"test predictions: {sum(k['wrong'] for k in kept)} wrong of {len(kept)} shown (wrong in red)")
        if figure is not None:
            self.path = save_figure(trainer, figure, folder / "predictions_test.png", "test/predictions")


__all__ = ["ConfusionMatrix", "DataExamples", "PredictionExamples", "confusion_counts", "pick_examples",
           "plot_confusion"]
