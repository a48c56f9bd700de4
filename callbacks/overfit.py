"""Overfit a few fixed batches before tuning anything; pass or fail out loud (T51).

Karpathy ("A Recipe for Training Neural Networks"): a model with regularisation off must drive
the loss on a handful of batches to about zero. If it cannot, no amount of tuning will help:
there is a bug (labels that do not match the inputs, a wrong loss, an output layer that cannot
express the classes) or the model has too little capacity. Lightning's ``overfit_batches``
trains on fixed batches but asserts nothing, and takes the first batches in the data set's order,
which for data stored by class holds one class only; ``OverfitCheck`` turns it into a test on
batches drawn at random (seeded) from the whole training set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, Subset
from typing_extensions import override

from .notices import notice
from .reporting import report_summary
from .sanity import split_batch

ADVICE = (
    "a model that cannot memorise a few batches has a bug or too little capacity: check that the labels "
    "belong to the inputs, that the loss and the output layer fit the task, that regularisation is off; "
    "then raise the LR, the model size or trainer.max_steps"
)


def loader_batch_size(loader: DataLoader) -> int:
    """Examples per batch of ``loader``, also when a batch sampler (e.g. length bucketing) makes them."""
    size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None)
    if not size:
        raise ValueError(f"OverfitCheck: cannot tell the batch size of the training loader ({type(loader.batch_sampler).__name__}); "
                         "give its batch sampler a `batch_size` attribute.")
    return int(size)


class OverfitCheck(Callback):
    r"""Overfit k fixed batches: pass when the loss and the accuracy reach their thresholds (T51).

    At setup it replaces the data module's training loader by one over ``num_batches`` batches of
    examples drawn once at random (with ``seed``) from the training set, served in the same order
    every epoch, so each epoch is the same k batches and they mix the classes. At the end of each
    training epoch it reads the mean of the epoch's step losses (from ``training_step``'s output)
    and the accuracy metric ``acc_key``; once the loss is at most ``loss_threshold`` and the
    accuracy at least ``acc_threshold`` it prints ``PASS`` and stops training. If ``trainer.max_steps``
    (or ``max_epochs``) runs out first it prints ``FAIL`` with the loss and accuracy reached.
    It also fails at once when the k batches hold a single class, which any model could fit.
    ``passed`` holds the outcome (``None`` before the end); the project's CLI exits with status 1
    on a failure. ``overfit/*`` goes to the W&B summary.

    Args:
        num_batches: k, the number of fixed training batches (of the loader's batch size).
        seed: seed of the draw of the examples.
        loss_threshold: the mean training loss over the k batches must fall to this or below.
        acc_threshold: the training accuracy must reach this (1.0: every example right).
        acc_key: the logged training accuracy (``<acc_key>_epoch`` is also tried).

    Raises:
        ValueError: ``num_batches`` < 1, ``loss_threshold`` not positive or ``acc_threshold`` outside (0, 1].

    Example::

        trainer:
          max_epochs: -1
          max_steps: 300               # N: the budget to reach the thresholds
          limit_val_batches: 0         # the test is about the training batches
          callbacks:
            - class_path: my_project.callbacks.OverfitCheck   # T51
              init_args: {num_batches: 4, loss_threshold: 0.05, acc_threshold: 1.0}
    """

    def __init__(
        self,
        num_batches: int = 4,
        seed: int = 0,
        loss_threshold: float = 0.05,
        acc_threshold: float = 1.0,
        acc_key: str = "train/acc",
    ) -> None:
        if not (isinstance(num_batches, int) and num_batches >= 1):
            raise ValueError(f"num_batches must be an integer >= 1, got {num_batches}.")
        if not loss_threshold > 0:
            raise ValueError(f"loss_threshold must be > 0, got {loss_threshold}.")
        if not 0 < acc_threshold <= 1:
            raise ValueError(f"acc_threshold must be in (0, 1], got {acc_threshold}.")
        self.num_batches = num_batches
        self.seed = seed
        self.loss_threshold = float(loss_threshold)
        self.acc_threshold = float(acc_threshold)
        self.acc_key = acc_key
        self.passed: Optional[bool] = None
        self.loss: Optional[float] = None
        self.acc: Optional[float] = None
        self.classes: set[int] = set()
        self.examples = 0
        self.message = ""
        self._sum: Optional[torch.Tensor] = None
        self._count = 0

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.passed, self.loss, self.acc, self.classes, self.message = None, None, None, set(), ""
        source = trainer.datamodule
        if stage != "fit" or source is None or not hasattr(source, "train_dataloader"):
            notice(__name__, "OverfitCheck: no data module, so the training batches are not fixed; set "
                             "trainer.overfit_batches to train on the first batches instead.")
            return
        original = source.train_dataloader

        def fixed_batches() -> DataLoader:
            loader = original()
            dataset, size = loader.dataset, loader_batch_size(loader)
            generator = torch.Generator().manual_seed(self.seed)
            indices = torch.randperm(len(dataset), generator=generator)[: self.num_batches * size].tolist()
            self.examples = len(indices)
            return DataLoader(Subset(dataset, indices), batch_size=size, shuffle=False,
                              collate_fn=loader.collate_fn, num_workers=loader.num_workers)

        source.train_dataloader = fixed_batches  # an instance attribute: the class's method is untouched
        self._patched = source
        if trainer.max_epochs == -1 and trainer.max_steps > 0:
            # the step budget decides; an epoch limit to match keeps the progress bar's "Epoch i/n" true
            steps_per_epoch = max(1, self.num_batches // trainer.accumulate_grad_batches)
            trainer.fit_loop.max_epochs = math.ceil(trainer.max_steps / steps_per_epoch)

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        patched = getattr(self, "_patched", None)
        if patched is not None and "train_dataloader" in vars(patched):
            del patched.train_dataloader
        self._patched = None

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.current_epoch == 0:
            _, labels = split_batch(batch)
            if labels is not None:
                self.classes.update(int(v) for v in labels.unique().tolist())

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().float()
            self._sum = loss if self._sum is None else self._sum + loss
            self._count += 1

    def _accuracy(self, trainer: Trainer) -> Optional[float]:
        metrics = trainer.callback_metrics
        value = metrics.get(f"{self.acc_key}_epoch", metrics.get(self.acc_key))
        return None if value is None else float(value)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.passed is not None or not self._count:
            return
        assert self._sum is not None
        loss = trainer.strategy.reduce(self._sum / self._count, reduce_op="mean")
        self._sum, self._count = None, 0
        self.loss, self.acc = float(loss), self._accuracy(trainer)
        if trainer.current_epoch == 0 and 0 < len(self.classes) < 2:
            self._finish(trainer, False, f"the {trainer.num_training_batches} batches hold one class only "
                                         f"({sorted(self.classes)}): any model fits them; shuffle or sort the data "
                                         "differently so the first batches mix classes")
            return
        acc_ok = self.acc is not None and self.acc >= self.acc_threshold
        if math.isfinite(self.loss) and self.loss <= self.loss_threshold and acc_ok:
            self._finish(trainer, True, "")

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.passed is None:
            self._finish(trainer, False, ADVICE)

    def _finish(self, trainer: Trainer, passed: bool, reason: str) -> None:
        self.passed = passed
        trainer.should_stop = True
        acc = "n/a" if self.acc is None else f"{self.acc:.3f}"
        loss = "n/a" if self.loss is None else f"{self.loss:.4g}"
        where = f"on {trainer.num_training_batches} fixed batches ({self.examples} examples) after {trainer.global_step} steps"
        if passed:
            self.message = f"Overfit test PASS: loss {loss}, accuracy {acc} {where}."
        else:
            self.message = (f"Overfit test FAIL: loss {loss} (needs <= {self.loss_threshold:g}), accuracy {acc} "
                            f"(needs >= {self.acc_threshold:g}) {where}. {reason[0].upper()}{reason[1:]}.")
        if trainer.is_global_zero:
            print(self.message, flush=True)
        report_summary(trainer, {"overfit/passed": passed, "overfit/loss": self.loss, "overfit/acc": self.acc,
                                 "overfit/steps": trainer.global_step, "overfit/classes": len(self.classes),
                                 "overfit/message": self.message})
