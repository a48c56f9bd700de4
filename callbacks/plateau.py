"""Halve the LR when the validation metric stops improving (T04)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch.optim.lr_scheduler import ReduceLROnPlateau
from typing_extensions import override

from .cyclic_lr import CyclicLR
from .notices import notice

MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")
# metric names that default to mode="min"; anything else (accuracy, f1, auc, …) defaults to "max"
LOWER_IS_BETTER = ("loss", "error", "perplexity", "mse", "mae")
# what a resumed run takes from the checkpointed torch scheduler: its progress, not its settings
_PROGRESS_KEYS = ("best", "num_bad_epochs", "cooldown_counter", "last_epoch", "_last_lr")


def default_mode(monitor: str) -> str:
    """``min`` for metric names that contain a lower-is-better word (``loss``, ``error``, …), else ``max``."""
    return "min" if any(word in monitor.lower() for word in LOWER_IS_BETTER) else "max"


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class HalveOnPlateau(Callback):
    r"""Multiply the LR by ``factor`` (½) when the monitored validation metric did not improve.

    T04: "start SGD at 1.0 or 0.1, check the validation set periodically, halve the LR if the
    cost did not go down". This wraps ``torch.optim.lr_scheduler.ReduceLROnPlateau`` on every
    optimizer of the run and steps it after each validation (never during the sanity check). Unlike
    a scheduler returned from ``configure_optimizers`` with a ``monitor``, it never fails when the
    metric is missing: epochs without validation (``check_val_every_n_epoch > 1``) are simply
    skipped, and a validation that did not log the metric warns once, listing the metrics it did log.

    ``patience`` counts validations, not epochs. The number of LR reductions so far is logged as
    ``lr/halvings`` at the end of each training epoch; add ``LearningRateMonitor`` for the LR itself.

    Args:
        monitor: the validation metric to watch, as logged with ``self.log``.
        mode: ``min`` or ``max``; by default ``min`` when the name contains ``loss``, ``error``,
            ``perplexity``, ``mse`` or ``mae``, else ``max``.
        factor: the LR is multiplied by this on a plateau, in (0, 1).
        patience: validations without improvement tolerated before reducing; 0 halves after the
            first validation that did not improve (T04 as written); 2–5 suits noisy metrics.
        threshold: the least change that counts as an improvement (see ``threshold_mode``).
        threshold_mode: ``rel`` (relative to the best value) or ``abs``.
        cooldown: validations to wait after a reduction before counting again.
        min_lr: the LR never goes below this.

    Raises:
        ValueError: ``factor`` outside (0, 1), ``patience`` or ``cooldown`` negative, ``threshold`` or
            ``min_lr`` negative, or an unknown ``mode``/``threshold_mode``.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.HalveOnPlateau   # T04
              init_args:
                monitor: val/loss
                patience: 1
                min_lr: 1.0e-5
    """

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: Optional[str] = None,
        factor: float = 0.5,
        patience: int = 0,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (or None: from the metric name), got {mode!r}.")
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {', '.join(THRESHOLD_MODES)}, got {threshold_mode!r}.")
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1) (0.5 halves the LR), got {factor}.")
        if not (isinstance(patience, int) and patience >= 0):
            raise ValueError(f"patience must be an integer >= 0, got {patience}.")
        if not (isinstance(cooldown, int) and cooldown >= 0):
            raise ValueError(f"cooldown must be an integer >= 0, got {cooldown}.")
        if not threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}.")
        if not min_lr >= 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}.")
        self.monitor = monitor
        self.mode = mode or default_mode(monitor)
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.threshold_mode = threshold_mode
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.halvings = 0
        self.schedulers: list[ReduceLROnPlateau] = []
        self._loaded: list[dict[str, Any]] = []  # scheduler states from a checkpoint, applied at train start
        self._warned = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(monitor=self.monitor, mode=self.mode)

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if any(isinstance(callback, CyclicLR) for callback in trainer.callbacks):
            notice(__name__, "HalveOnPlateau does nothing in this run: CyclicLR sets the LR every step (e.g. the "
                             "snapshot preset on a default that halves on plateaus).")
            self.schedulers, self._loaded = [], []
            return
        self.schedulers = [
            ReduceLROnPlateau(
                optimizer, mode=self.mode, factor=self.factor, patience=self.patience, threshold=self.threshold,
                threshold_mode=self.threshold_mode, cooldown=self.cooldown, min_lr=self.min_lr,
            )
            for optimizer in trainer.optimizers
        ]
        for scheduler, state in zip(self.schedulers, self._loaded):
            keys = [k for k in _PROGRESS_KEYS if k in state and (k != "best" or state.get("mode") == self.mode)]
            scheduler.__dict__.update({k: state[k] for k in keys})
        self._loaded = []

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or not self.schedulers:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            if not self._warned:
                self._warned = True
                available = ", ".join(sorted(trainer.callback_metrics)) or "none"
                notice(
                    __name__,
                    f"HalveOnPlateau: the validation did not log `{self.monitor}`, so the LR is not adjusted. "
                    f"Available metrics: {available}."
                )
            return
        # one decision for all ranks: the mean of the ranks' values (the value itself on one device)
        value = float(trainer.strategy.reduce(torch.as_tensor(float(value), device=pl_module.device), reduce_op="mean"))
        before = [float(group["lr"]) for s in self.schedulers for group in s.optimizer.param_groups]
        for scheduler in self.schedulers:
            scheduler.step(value)
        after = [float(group["lr"]) for s in self.schedulers for group in s.optimizer.param_groups]
        if any(new < old for old, new in zip(before, after)):
            self.halvings += 1
            rank_zero_info(
                f"HalveOnPlateau: {self.monitor}={value:.4g} has not improved for {self.patience + 1} validation(s); "
                f"LR {before[0]:.3g} -> {after[0]:.3g}."
            )

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.log("lr/halvings", float(self.halvings), on_step=False, on_epoch=True)

    @override
    def state_dict(self) -> dict[str, Any]:
        schedulers = [{k: _plain(v) for k, v in s.state_dict().items()} for s in self.schedulers] or self._loaded
        return {"schedulers": schedulers, "halvings": self.halvings}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.halvings = state_dict.get("halvings", 0)
        self._loaded = list(state_dict.get("schedulers", []))
