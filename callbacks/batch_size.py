"""The largest batch size that fits (T07), and the LR that follows it (T06), before the LR range test."""

from __future__ import annotations

import logging
import math
from typing import Any, Literal, Optional

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BatchSizeFinder
from lightning.pytorch.tuner.batch_size_scaling import _reset_dataloaders
from lightning.pytorch.utilities.parsing import lightning_getattr, lightning_hasattr, lightning_setattr
from typing_extensions import override

from .contract import classification_data
from .fit_start import FitStartStep
from .lr_scaling import _scale_module, linear_scale, scale_learning_rates
from .notices import notice
from .reporting import report_summary


def search_trials(batch_size: int, cap: int) -> int:
    """How many sizes a doubling search from ``batch_size`` tries without passing ``cap`` (1: only ``batch_size``).

    Example:
        >>> search_trials(128, 512), search_trials(128, 300), search_trials(128, 100)
        (3, 2, 1)
    """
    return 1 + max(0, math.floor(math.log2(cap / batch_size))) if cap >= batch_size else 1


class BatchSizeSearch(FitStartStep):
    r"""At fit start, find the largest batch size that fits with Lightning's ``BatchSizeFinder``, then scale the LR.

    T07 ("start around 128; bigger is not always better; find the largest that fits, then tune"):
    from the data module's ``batch_size`` (the start), Lightning's ``BatchSizeFinder`` doubles the
    batch size (``mode: power``; ``binsearch`` then bisects up to the first size that ran out of
    memory), running ``steps_per_trial`` training steps at each, until memory runs out or the cap:
    ``max_batch_size``, and no more than ``1 / min_steps_per_epoch`` of the training set, so an
    epoch keeps at least ``min_steps_per_epoch`` steps. On a CPU nothing runs out of memory and the
    search stops at the cap. It never goes below the start.

    T06: the LR then follows the batch size by Goyal et al.'s linear rule (``model.lr`` × new /
    start, every param group and scheduler LR as ``LinearLRScaling`` does). An LR finder after it
    (``fit_start_order`` 30 after this step's 25) measures the LR at the new batch size and
    replaces the scaled one; the scaled LR is what a run without one, or with an unreadable curve
    (``unreliable: keep``), trains with.

    Weights, optimizer and callbacks are restored after the trials (Lightning's own checkpoint
    round trip). Skipped on resume (the checkpoint's batch size is used again), under
    ``fast_dev_run`` and with more than one process (Lightning's finder does not support DDP),
    which it says. Logs ``batch_size/found`` and ``batch_size/lr_scale`` to the run summary.

    Args:
        mode: ``power`` (doubling) or ``binsearch`` (doubling, then bisection below the first
            failure; its sizes need not be powers of two).
        steps_per_trial: training steps run at each size.
        max_batch_size: never search above this size.
        min_steps_per_epoch: never search above a batch size that leaves an epoch fewer steps.
        batch_arg_name: the data module's (or model's) attribute holding the batch size.

    Raises:
        ValueError: an unknown ``mode`` or a limit below 1.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.BatchSizeSearch   # T07 + T06, before the LR finder
              init_args:
                max_batch_size: 512
                min_steps_per_epoch: 10
    """

    fit_start_order = 25  # after weight init, before the LR range test (see fit_start.py)

    def __init__(
        self,
        mode: Literal["power", "binsearch"] = "power",
        steps_per_trial: int = 3,
        max_batch_size: int = 512,
        min_steps_per_epoch: int = 10,
        batch_arg_name: str = "batch_size",
    ) -> None:
        if mode not in BatchSizeFinder.SUPPORTED_MODES:
            raise ValueError(f"mode must be one of {', '.join(BatchSizeFinder.SUPPORTED_MODES)}, got {mode!r}.")
        for name, value in (("steps_per_trial", steps_per_trial), ("max_batch_size", max_batch_size),
                            ("min_steps_per_epoch", min_steps_per_epoch)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
        self.mode = mode
        self.steps_per_trial = steps_per_trial
        self.max_batch_size = max_batch_size
        self.min_steps_per_epoch = min_steps_per_epoch
        self.batch_arg_name = batch_arg_name
        self.done = False
        self.start: Optional[int] = None
        self.found: Optional[int] = None
        self.scale: Optional[float] = None

    @staticmethod
    def _train_examples(trainer: Trainer) -> Optional[int]:
        """Training examples, from the data module's ``class_counts`` (the callbacks' contract); ``None`` without."""
        data = classification_data(trainer)
        return sum(data.class_counts("train")) if data is not None else None

    @override
    def fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.done:  # resumed: the loaders are built after this hook, at the batch size the run searched
            if self.found is not None:
                lightning_setattr(pl_module, self.batch_arg_name, self.found)
                _scale_module(pl_module, self.scale or 1.0)
            return
        self.done = True
        if not lightning_hasattr(pl_module, self.batch_arg_name):
            raise ValueError(f"BatchSizeSearch: neither the model nor the data module has `{self.batch_arg_name}`; "
                             "set batch_arg_name to the attribute that holds the batch size.")
        if trainer.fast_dev_run:
            return
        if trainer.world_size > 1:
            notice(__name__, "BatchSizeSearch: skipped with more than one process (Lightning's BatchSizeFinder does "
                             "not support DDP); set data.batch_size yourself.")
            return
        start = int(lightning_getattr(pl_module, self.batch_arg_name))
        examples = self._train_examples(trainer)
        cap = self.max_batch_size if examples is None else min(self.max_batch_size, examples // self.min_steps_per_epoch)
        trials = search_trials(start, cap)
        self.start = start
        if trials == 1:
            self.found, self.scale = start, 1.0
            notice(__name__, f"BatchSizeSearch: keeping batch size {start}: "
                             + (f"{examples:,} training examples, and a larger batch would leave an epoch fewer than "
                                f"{self.min_steps_per_epoch} steps" if examples is not None and cap < 2 * start
                                else f"max_batch_size is {self.max_batch_size}") + ".", logging.INFO)
            report_summary(trainer, {"batch_size/found": start, "batch_size/lr_scale": 1.0})
            return
        finder = BatchSizeFinder(mode=self.mode, steps_per_trial=self.steps_per_trial, init_val=start,
                                 max_trials=trials, batch_arg_name=self.batch_arg_name, max_val=cap + 1)
        finder.setup(trainer, pl_module, "fit")
        finder.scale_batch_size(trainer, pl_module)
        found = max(start, min(int(finder.optimal_batch_size or start), cap))
        if found != lightning_getattr(pl_module, self.batch_arg_name):
            lightning_setattr(pl_module, self.batch_arg_name, found)
            _reset_dataloaders(trainer)  # Lightning's own: the loaders again, at the found size
        self.found = found
        self.scale = linear_scale(found, start)
        if self.scale != 1.0:
            scale_learning_rates(trainer, pl_module, self.scale)  # T06
        notice(__name__, f"BatchSizeSearch: batch size {found} (from {start}, cap {cap}); LR x {self.scale:g} "
                         f"= {getattr(pl_module, 'lr', float('nan')):.3g} (T06).", logging.INFO)
        report_summary(trainer, {"batch_size/found": found, "batch_size/lr_scale": self.scale})

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done, "start": self.start, "found": self.found, "scale": self.scale}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = state_dict.get("done", False)
        self.start = state_dict.get("start")
        self.found = state_dict.get("found")
        self.scale = state_dict.get("scale")
