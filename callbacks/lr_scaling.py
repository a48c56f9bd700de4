"""Scale the LR linearly with the batch size (T06)."""

from __future__ import annotations

from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from typing_extensions import override

from .notices import notice
from .reporting import report_summary

# where torch optimizers and schedulers (created in `configure_optimizers`) keep LRs: param-group keys, and
# scheduler attributes (lists, one per group); ReduceLROnPlateau's `min_lrs` floor is scaled as well
_GROUP_LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")
_SCHEDULER_LR_LISTS = ("base_lrs", "max_lrs", "min_lrs")


def scale_learning_rates(trainer: Trainer, pl_module: LightningModule, factor: float) -> None:
    """Multiply every LR a run holds by ``factor``: each param group of each optimizer (with the LRs
    torch schedulers keep there), the schedulers' own lists, and the module's ``lr``/``learning_rate``
    attribute and hyperparameter. Ratios between groups are kept. Shared by LRFinder and LinearLRScaling."""
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            for key in _GROUP_LR_KEYS:
                if key in group:
                    group[key] = group[key] * factor
    for config in trainer.lr_scheduler_configs:
        for name in _SCHEDULER_LR_LISTS:
            values = getattr(config.scheduler, name, None)
            if isinstance(values, list):
                setattr(config.scheduler, name, [value * factor for value in values])
    _scale_module(pl_module, factor)


def _scale_module(pl_module: LightningModule, factor: float) -> None:
    hparams = getattr(pl_module, "hparams", {})
    for name in ("lr", "learning_rate"):
        value = getattr(pl_module, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(pl_module, name, value * factor)
        if isinstance(hparams.get(name), (int, float)) and not isinstance(hparams.get(name), bool):
            hparams[name] = hparams[name] * factor


def linear_scale(batch_size: int, base_batch_size: int) -> float:
    """Goyal et al.'s linear scaling rule: the LR multiplier for ``batch_size`` when the LR was tuned at
    ``base_batch_size``."""
    return batch_size / base_batch_size


class LinearLRScaling(Callback):
    r"""Multiply the LR by ``batch_size / base_batch_size`` once, when fitting starts.

    T06, Goyal et al. 2017 ("Accurate, Large Minibatch SGD"): when the minibatch grows by
    k, multiply the LR by k. Use it when the LR in your config was tuned at another batch size
    (``base_batch_size``). It is opt-in, and redundant with an LR finder, which measures at the
    batch size it runs with; with both on, it warns. Goyal et al. pair large scale-ups with a
    gradual warm-up (5 epochs), e.g. ``CyclicLR(policy="one_cycle")``, whose peak is the scaled LR.

    The batch size is the ``batch_size`` argument, else ``trainer.datamodule.batch_size``; the rule
    uses the effective batch, ``batch_size × accumulate_grad_batches × world_size``. Every param
    group of every optimizer is scaled, with the LRs that torch schedulers from ``configure_optimizers``
    keep (``initial_lr``, ``max_lr``, ``base_lrs``, …), and so is the module's ``lr`` (or
    ``learning_rate``) attribute.
    A resumed run is not scaled again: the checkpoint's optimizer already holds the scaled LR (only the
    rebuilt module's ``lr`` attribute is scaled, to agree with it).

    Logs ``lr/scale`` and ``lr/scaled_from`` (group 0's LR before scaling) at the end of the first
    training epoch, and writes them to the W&B run summary when a ``WandbLogger`` is present.

    Args:
        base_batch_size: the (effective) batch size the configured LR was tuned at.
        batch_size: the batch size of this run, when the datamodule has no ``batch_size`` attribute.

    Raises:
        ValueError: ``base_batch_size`` or ``batch_size`` is not a positive integer.
        RuntimeError: at fit start, when neither ``batch_size`` nor ``trainer.datamodule.batch_size`` is set.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.LinearLRScaling   # T06
              init_args:
                base_batch_size: 32     # model.lr was tuned with data.batch_size: 32
    """

    def __init__(self, base_batch_size: int, batch_size: Optional[int] = None) -> None:
        if not (isinstance(base_batch_size, int) and base_batch_size > 0):
            raise ValueError(f"base_batch_size must be a positive integer (the batch size the LR was tuned at), "
                             f"got {base_batch_size!r}.")
        if batch_size is not None and not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(
                f"batch_size must be a positive integer or None (from the datamodule), got {batch_size!r}."
            )
        self.base_batch_size = base_batch_size
        self.batch_size = batch_size
        self.applied = False
        self.scale: Optional[float] = None
        self.scaled_from: Optional[float] = None
        self._log_pending = False

    def _batch_size(self, trainer: Trainer) -> int:
        if self.batch_size is not None:
            return self.batch_size
        value = getattr(trainer.datamodule, "batch_size", None)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            where = "There is no datamodule"
            if trainer.datamodule is not None:
                where = "The datamodule has no integer `batch_size`"
            raise RuntimeError(
                f"LinearLRScaling: {where} to read the batch size from. Pass `batch_size=` to LinearLRScaling "
                "(init_args: batch_size: 64), or give the datamodule a `batch_size` attribute."
            )
        return value

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.applied:
            # resumed: the optimizer state restored after this hook already holds the scaled LR; only the
            # freshly built module's attribute needs it, to agree with the optimizer
            if self.scale is not None:
                _scale_module(pl_module, self.scale)
            return
        finder = next((type(c).__name__ for c in trainer.callbacks if c is not self and hasattr(c, "suggestion")), None)
        if finder is not None:
            notice(__name__, f"LinearLRScaling and the LR finder {finder} are both on: the finder already measures the "
                             "LR at this batch size, so the scaled LR may be overridden or scaled twice. Remove one.")
        effective = self._batch_size(trainer) * trainer.accumulate_grad_batches * trainer.world_size
        self.scale = linear_scale(effective, self.base_batch_size)
        self.scaled_from = float(trainer.optimizers[0].param_groups[0]["lr"])
        scale_learning_rates(trainer, pl_module, self.scale)
        self.applied = True
        self._log_pending = True
        rank_zero_info(
            f"LinearLRScaling: batch {effective} vs {self.base_batch_size}: "
            f"LR {self.scaled_from:.3g} x {self.scale:.3g} = {self.scaled_from * self.scale:.3g}."
        )
        report_summary(trainer, {"lr/scale": self.scale, "lr/scaled_from": self.scaled_from})

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._log_pending and self.scale is not None:
            pl_module.log("lr/scale", self.scale, on_step=False, on_epoch=True)
            pl_module.log("lr/scaled_from", float(self.scaled_from or 0.0), on_step=False, on_epoch=True)
            self._log_pending = False

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "scale": self.scale, "scaled_from": self.scaled_from}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.applied = state_dict.get("applied", False)
        self.scale = state_dict.get("scale")
        self.scaled_from = state_dict.get("scaled_from")
