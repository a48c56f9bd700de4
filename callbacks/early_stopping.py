"""Early stopping that ends with the best weights, not the last ones (T35), and that knows
how many validation examples one difference in its metric is.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Union

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from .contract import classification_data
from .notices import notice

AUTO = "auto"


def example_delta(monitor: str, val_examples: Optional[int], examples: float = 1.5) -> float:
    """``min_delta: auto``: ``examples`` validation examples' worth of ``monitor``, 0 for a loss.

    An accuracy (or F1) over ``n`` examples moves in steps of ``1 / n``: with the default 1.5
    examples, a one-example gain never counts as an improvement and a two-example gain always does.
    A loss moves continuously and gets 0, as does an unknown validation size.

    Example:
        >>> round(example_delta("val/acc", 300), 4), example_delta("val/loss", 300)
        (0.005, 0.0)
    """
    name = monitor.lower()
    if not val_examples or not any(key in name for key in ("acc", "f1")):
        return 0.0
    return examples / val_examples


def validation_size_problems(class_counts: dict[str, int], min_examples: int, min_per_class: int) -> list[str]:
    """What makes a validation split of these ``class_counts`` too small to choose epochs with, in words.

    Example:
        >>> validation_size_problems({"ham": 295, "spam": 45}, 400, 50)[1]
        "class 'spam' has 45 validation examples (< 50): its share of the errors is measured on a handful"
    """
    total = sum(class_counts.values())
    problems = []
    if total < min_examples:
        problems.append(f"{total} validation examples (< {min_examples}): one example is {100 / total:.2g} points of "
                        f"accuracy, and at 90% accuracy its standard error is {100 * math.sqrt(0.09 / total):.2g} points, "
                        "more than epochs usually differ by")
    problems += [f"class {label!r} has {count} validation examples (< {min_per_class}): its share of the errors is "
                 "measured on a handful" for label, count in class_counts.items() if count < min_per_class]
    return problems


class EarlyStopping(LightningEarlyStopping):
    r"""Lightning's ``EarlyStopping``, plus Keras's ``restore_best_weights``.

    Stopping ``patience`` validations after the best one leaves the model at its *last* weights,
    which are worse than the best by construction. With ``restore_best_weights`` (the default) the
    callback keeps a CPU copy of the weights at each new best value of ``monitor`` and loads it back
    into the model when fitting ends, whatever ends it: early stopping, ``max_epochs``/``max_steps``
    or Ctrl+C; not SIGTERM, a preemption the run resumes from. So ``trainer.test`` / ``predict`` right after ``fit`` and the model object
    the user holds see the best weights. The copy travels in checkpoints (resume keeps it), and with
    DDP rank zero decides what counts as a new best, so every rank restores the same weights.
    Checkpoints written during training still hold the last weights (they are for resuming), also
    the one ``ResumableCheckpoint`` writes after a Ctrl+C restored the best.

    ``min_delta: auto`` sizes the smallest improvement to the validation split: for an accuracy or
    F1 over ``n`` validation examples it is ``1.5 / n`` (a one-example gain is noise, not an
    improvement; a 340-example split would otherwise pick epochs 0.29 points apart), for a loss 0.
    The size comes from the data module's ``class_counts("val")`` or the validation loader. At fit
    start a warning says when the split is too small to choose between epochs with: fewer than
    ``min_val_examples`` examples, or a class with fewer than ``min_val_per_class``, and what helped
    (``benchmarks/results/selection.md``: a 20% validation share).

    All other arguments are Lightning's (``monitor``, ``mode``, ``patience``, …).

    Args:
        monitor: the metric to watch.
        restore_best_weights: load the best weights back at the end of fitting.
        min_delta: the smallest change that counts as an improvement, or ``auto`` (see above).
        min_val_examples: warn at fit start below this many validation examples.
        min_val_per_class: warn at fit start when a class has fewer validation examples.
        **kwargs: ``lightning.pytorch.callbacks.EarlyStopping``'s other arguments.

    Raises:
        ValueError: a negative ``min_delta`` or a threshold below 1.
        MisconfigurationException: an unknown ``mode`` (from Lightning).

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.EarlyStopping   # T35
              init_args:
                monitor: val/acc
                mode: max
                patience: 3
                min_delta: auto        # 1.5 validation examples' worth of val/acc
                restore_best_weights: true
    """

    def __init__(self, monitor: str = "val/loss", restore_best_weights: bool = True,
                 min_delta: Union[float, Literal["auto"]] = 0.0, min_val_examples: int = 400,
                 min_val_per_class: int = 50, **kwargs: Any) -> None:
        if min_delta != AUTO and not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"min_delta must be a number >= 0 or `auto` (1.5 validation examples' worth of an accuracy), "
                             f"got {min_delta!r}.")
        for name, value in (("min_val_examples", min_val_examples), ("min_val_per_class", min_val_per_class)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        super().__init__(monitor=monitor, min_delta=0.0 if min_delta == AUTO else float(min_delta), **kwargs)
        self.auto_min_delta = min_delta == AUTO
        self.min_val_examples, self.min_val_per_class = min_val_examples, min_val_per_class
        self.val_examples: Optional[int] = None
        self.restore_best_weights = restore_best_weights
        self.best_weights: Optional[dict[str, torch.Tensor]] = None
        self.best_epoch: Optional[int] = None
        self.best_step: Optional[int] = None
        self.restored = False
        self._interrupted_weights: Optional[dict[str, torch.Tensor]] = None

    @property
    def _checkpoint_key(self) -> str:
        return f"{self.state_key}/best_weights"

    def _validation_counts(self, trainer: Trainer) -> Optional[dict[str, int]]:
        """Validation examples per class from the data module (``class_counts``, ``labels``), if it says."""
        data = classification_data(trainer)
        if data is None:
            return None
        return dict(zip(map(str, data.labels), map(int, data.class_counts("val"))))

    def _set_min_delta(self, trainer: Trainer, val_examples: Optional[int]) -> None:
        self.val_examples = val_examples
        delta = example_delta(self.monitor, val_examples)
        self.min_delta = torch.tensor(delta if self.monitor_op == torch.gt else -delta)

    @override
    def _run_early_stopping_check(self, trainer: Trainer) -> None:
        if self.auto_min_delta and self.val_examples is None:  # no data module that counts: the loader's size
            dataset = getattr(trainer.val_dataloaders, "dataset", None)
            self._set_min_delta(trainer, len(dataset) if hasattr(dataset, "__len__") else 0)
        before = self.best_score
        super()._run_early_stopping_check(trainer)
        if not self.restore_best_weights:
            return
        # rank zero's view decides, so every rank keeps the weights of the same step
        improved = trainer.strategy.broadcast(self.best_score is not before, src=0)
        if improved:
            module = trainer.lightning_module
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
            self.best_epoch, self.best_step = trainer.current_epoch, trainer.global_step

    def _restore(self, trainer: Trainer, pl_module: LightningModule, why: str, keep_last: bool = False) -> None:
        if not self.restore_best_weights or self.best_weights is None or self.restored:
            return
        if keep_last:  # a checkpoint saved after this restore must still resume from the last weights
            self._interrupted_weights = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        pl_module.load_state_dict(self.best_weights)
        self.restored = True
        rank_zero_info(f"EarlyStopping: {why}; restored the weights of epoch {self.best_epoch} (step {self.best_step}), "
                       f"best {self.monitor} = {float(self.best_score):.4g}.")

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.restored, self._interrupted_weights = False, None
        counts = self._validation_counts(trainer)
        if counts is None:
            return
        if self.auto_min_delta:
            self._set_min_delta(trainer, sum(counts.values()))
        problems = validation_size_problems(counts, self.min_val_examples, self.min_val_per_class)
        if problems:
            notice(__name__, f"EarlyStopping: the validation split is small for choosing epochs by {self.monitor}: "
                             f"{'; '.join(problems)}. Raise data.val_fraction, or give a larger val_path (on 4,000 MR "
                             "sentences 0.2 instead of 0.1 chose epochs that tested 1.8 points higher; selecting on "
                             "val/loss instead tested 1.0 lower).")

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        why = "stopped early" if self.stopped_epoch else "training ended"
        self._restore(trainer, pl_module, why)

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):  # not SIGTERMException: a preempted run resumes
            self._restore(trainer, pl_module, "interrupted (Ctrl+C)", keep_last=True)

    @override
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._interrupted_weights is not None and "state_dict" in checkpoint:
            checkpoint["state_dict"] = self._interrupted_weights
        if not self.restore_best_weights or self.best_weights is None:
            return
        weights = checkpoint.get("state_dict")
        if self.best_step == trainer.global_step and isinstance(weights, dict) and weights.keys() == self.best_weights.keys():
            # saved at the best step (the best checkpoint): the same tensors as the weights, which torch.save
            # writes once, instead of a second copy of the model in every best checkpoint
            checkpoint[self._checkpoint_key] = weights
        else:
            checkpoint[self._checkpoint_key] = self.best_weights

    @override
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self.best_weights = checkpoint.get(self._checkpoint_key, self.best_weights)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch, "best_step": self.best_step}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.best_epoch = state_dict.get("best_epoch")
        self.best_step = state_dict.get("best_step")
